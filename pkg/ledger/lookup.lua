-- Reads one SKU's position at one location for the API in one round trip:
-- the totals, the quantity of holds already lapsed by the clock (the folder
-- purges them only when it next applies an entry of the SKU), and, when
-- asked and the position has inbound, its open supply by kind and due day.
--
-- KEYS[1] "sf:{SKU}"; ARGV[1] location, ARGV[2] now (ms), ARGV[3] "1" for PO lines.
-- Returns { oh, rs, pk, hd, ib, ss, rop, v, lapsed, { "kind|day", qty, ... } }.
local P = KEYS[1]
local loc = ARGV[1]
local h = redis.call('HMGET', P .. ':p:' .. loc, 'oh', 'rs', 'pk', 'hd', 'ib', 'ss', 'rop', 'v')
local out = {}
for i = 1, 8 do out[i] = tonumber(h[i]) or 0 end
local lapsed = 0
local ex = redis.call('ZRANGEBYSCORE', P .. ':hx', '-inf', ARGV[2])
if #ex > 0 then
  local holds = redis.call('HMGET', P .. ':h', unpack(ex))
  for _, v in ipairs(holds) do
    if v then
      local hd = cjson.decode(v)
      if hd.st == 'held' and hd.loc == loc then lapsed = lapsed + hd.q end
    end
  end
end
out[9] = lapsed
local po = {}
if ARGV[3] == '1' and out[5] > 0 then
  po = redis.call('HGETALL', P .. ':sup:' .. loc)
end
out[10] = po
return out
