-- Applies one SKU's ledger entries, in log order, to that SKU's keys.
-- Every key starts with KEYS[1] ("sf:{SKU}"), so one call stays in one hash
-- slot on Redis Cluster. Deterministic: it reads no clock, only entry times.
--
-- ARGV[1] dedupe window (ms), ARGV[2] journal window (ms), ARGV[3] lineage
-- length, ARGV[4] the SKU, ARGV[5..] entries as JSON (see entry.go).
--
-- Returns { statuses, positions }: one status per entry, and per location the
-- call touched { loc, before x7, after x7, version } (fields: on_hand,
-- reserved, picked, held, inbound, safety_stock, reorder_point).
local P = KEYS[1]
local dedupWin = tonumber(ARGV[1])
local jWin = tonumber(ARGV[2])
local logCap = tonumber(ARGV[3])
local sku = ARGV[4]

local FIELDS = {'oh', 'rs', 'pk', 'hd', 'ib', 'ss', 'rop'}
local touched, order = {}, {}

local function pkey(loc) return P .. ':p:' .. loc end

local function snap(loc)
  local h = redis.call('HMGET', pkey(loc), 'oh', 'rs', 'pk', 'hd', 'ib', 'ss', 'rop')
  local s = {}
  for i = 1, 7 do s[i] = tonumber(h[i]) or 0 end
  return s
end

local function touch(loc)
  if not touched[loc] then
    touched[loc] = snap(loc)
    order[#order + 1] = loc
    redis.call('SADD', P .. ':locs', loc)
  end
end

local function incr(loc, field, d)
  if d ~= 0 then
    touch(loc)
    redis.call('HINCRBY', pkey(loc), field, d)
  end
end

local function getj(key, field)
  local v = redis.call('HGET', key, field)
  if v then return cjson.decode(v) end
  return nil
end

local function num(v) return tonumber(v) or 0 end

-- Order lines: {loc, grp, o ordered, p picked, s shipped, c cancelled}.
local function lineContrib(l)
  local res = 0
  if l.c ~= 1 then res = math.max(num(l.o) - math.max(num(l.p), num(l.s)), 0) end
  return res, math.max(num(l.p) - num(l.s), 0)
end

local function lineDelta(l, sign)
  if not l then return end
  local res, pk = lineContrib(l)
  if l.loc then
    incr(l.loc, 'rs', sign * res)
    incr(l.loc, 'pk', sign * pk)
  elseif l.grp then
    if res ~= 0 then redis.call('HINCRBY', P .. ':g:' .. l.grp, 'rs', sign * res) end
  end
end

local function updateLine(e, fn)
  local key = P .. ':ol'
  local field = e.oid .. '|' .. e.lid
  local before = getj(key, field)
  local after = before and cjson.decode(cjson.encode(before)) or {o = 0, p = 0, s = 0, c = 0}
  fn(after)
  lineDelta(before, -1)
  lineDelta(after, 1)
  redis.call('HSET', key, field, cjson.encode(after))
end

-- PO lines: {loc, q, ed, st, aq, ad, an {asn -> qty}, eta, r, cl}.
local function poEffective(l)
  if l.cl == 1 or l.st == 'REJECTED' then return 0 end
  if l.an then
    local s = 0
    for _, q in pairs(l.an) do s = s + q end
    return s
  end
  if l.st then return num(l.aq) end
  return num(l.q)
end

-- A line's open supply, by how firm it is and the day it is due: the
-- lookups read these buckets (P:sup:<loc>) instead of every PO line.
local function poBucket(l)
  if l.an and num(l.eta) > 0 then return 'asn|' .. math.floor(l.eta / 86400000) end
  if l.st then
    if num(l.ad) > 0 then return 'ack|' .. l.ad end
    return 'ack|' .. num(l.ed)
  end
  return 'rel|' .. num(l.ed)
end

local function poDelta(l, sign)
  if not (l and l.loc) then return end
  local q = math.max(poEffective(l) - num(l.r), 0)
  incr(l.loc, 'ib', sign * q)
  if q > 0 then
    local key, field = P .. ':sup:' .. l.loc, poBucket(l)
    if redis.call('HINCRBY', key, field, sign * q) == 0 then redis.call('HDEL', key, field) end
  end
end

local function updatePO(e, fn)
  local key = P .. ':po'
  local field = e.po .. '|' .. e.pl
  local before = getj(key, field)
  local after = before and cjson.decode(cjson.encode(before)) or {q = 0, r = 0}
  fn(after)
  poDelta(before, -1)
  poDelta(after, 1)
  redis.call('HSET', key, field, cjson.encode(after))
end

-- On-hand movements and counts. A movement at or before the last count's
-- as-of time is inside that count already.
local function movement(e, d)
  local key = pkey(e.l)
  local ct = tonumber(redis.call('HGET', key, 'ct'))
  touch(e.l)
  if ct and e.et <= ct then return 'absorbed' end
  incr(e.l, 'oh', d)
  local j = P .. ':j:' .. e.l
  redis.call('ZADD', j, e.et, e.p .. ':' .. e.o .. ':' .. d)
  redis.call('ZREMRANGEBYSCORE', j, '-inf', '(' .. (e.et - jWin))
  return 'ok'
end

local function count(e)
  local key = pkey(e.l)
  local ct = tonumber(redis.call('HGET', key, 'ct'))
  touch(e.l)
  if ct and e.ao <= ct then return 'ignored' end
  local j = P .. ':j:' .. e.l
  local sum = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', j, '(' .. e.ao, '+inf')) do
    sum = sum + tonumber(string.match(m, ':(-?%d+)$'))
  end
  local oh = tonumber(redis.call('HGET', key, 'oh')) or 0
  incr(e.l, 'oh', e.q + sum - oh)
  redis.call('HSET', key, 'ct', e.ao)
  redis.call('ZREMRANGEBYSCORE', j, '-inf', e.ao)
  -- How far the book was from the count: a reconciliation exception when not 0.
  return 'counted:' .. (e.q + sum - oh)
end

-- Holds. Field hold_id|location in P:h; P:hx orders active holds by expiry.
-- nextExpiry caches the earliest expiry so that entries of a SKU without
-- holds due cost no call.
local nextExpiry = nil
local function loadNextExpiry()
  local first = redis.call('ZRANGE', P .. ':hx', 0, 0, 'WITHSCORES')
  if #first == 2 then nextExpiry = tonumber(first[2]) else nextExpiry = math.huge end
end

local function purgeHolds(t)
  if nextExpiry == nil then loadNextExpiry() end
  if t < nextExpiry then return end
  local hx = P .. ':hx'
  local expired = redis.call('ZRANGEBYSCORE', hx, '-inf', t)
  for _, f in ipairs(expired) do
    local h = getj(P .. ':h', f)
    if h and h.st == 'held' then
      incr(h.loc, 'hd', -h.q)
      h.st = 'expired'
      redis.call('HSET', P .. ':h', f, cjson.encode(h))
    end
    redis.call('ZREM', hx, f)
  end
  loadNextExpiry()
end

local function releaseHold(f, newStatus)
  local h = getj(P .. ':h', f)
  if h and h.st == 'held' then
    incr(h.loc, 'hd', -h.q)
    h.st = newStatus
    redis.call('HSET', P .. ':h', f, cjson.encode(h))
    redis.call('ZREM', P .. ':hx', f)
    return true
  end
  return false
end

local function hold(e)
  local f = e.hid .. '|' .. e.l
  local h = getj(P .. ':h', f)
  local status
  if h then
    -- The same hold again: the first decision stands.
    if h.st == 'rejected' then status = 'rejected:' .. h.atp else status = h.st .. ':' .. h.atp end
  else
    local s = snap(e.l)
    touch(e.l)
    local atp = s[1] - s[2] - s[3] - s[4] - s[6]
    if atp >= e.q then
      incr(e.l, 'hd', e.q)
      local exp = e.et + e.ttl
      redis.call('HSET', P .. ':h', f, cjson.encode({loc = e.l, q = e.q, exp = exp, st = 'held', atp = atp - e.q}))
      redis.call('ZADD', P .. ':hx', exp, f)
      if nextExpiry == nil or exp < nextExpiry then nextExpiry = exp end
      status = 'held:' .. (atp - e.q)
    else
      redis.call('HSET', P .. ':h', f, cjson.encode({loc = e.l, q = e.q, st = 'rejected', atp = atp}))
      status = 'rejected:' .. atp
    end
  end
  if e.rt then
    redis.call('PUBLISH', e.rt, e.hid .. '|' .. sku .. '|' .. e.l .. '|' .. status)
  end
  return status
end

local statuses = {}
local wkey, ekey = P .. ':w', P .. ':e'
local marks = {}   -- partition -> watermark, read once, written back at the end
local lineage = {}
-- The dedupe window slides with each entry's time, as if pruned after every
-- entry; oldestSeen caches the set's lowest time so pruning costs a call
-- only when something is due to go.
local oldestSeen = nil
local function pruneSeen(t)
  if oldestSeen == nil then
    local first = redis.call('ZRANGE', ekey, 0, 0, 'WITHSCORES')
    if #first == 2 then oldestSeen = tonumber(first[2]) else oldestSeen = math.huge end
  end
  if oldestSeen < t - dedupWin then
    redis.call('ZREMRANGEBYSCORE', ekey, '-inf', '(' .. (t - dedupWin))
    oldestSeen = nil
  end
end
for i = 5, #ARGV do
  local e = cjson.decode(ARGV[i])
  local status = 'ok'
  local pk = tostring(e.p)
  if marks[pk] == nil then marks[pk] = tonumber(redis.call('HGET', wkey, pk)) or -1 end
  if e.o <= marks[pk] then
    status = 'stale'
  else
    marks[pk] = e.o
    if redis.call('ZSCORE', ekey, e.id) then
      status = 'dup'
      -- A hold produced twice still owes its waiter an answer: the first one.
      if e.t == 'HOLD' then status = hold(e) end
    else
      redis.call('ZADD', ekey, e.et, e.id)
      if oldestSeen ~= nil and e.et < oldestSeen then oldestSeen = e.et end
      pruneSeen(e.et)
      purgeHolds(e.et)
      local t = e.t
      if t == 'RECEIPT' then
        status = movement(e, e.q)
        if e.po and e.pl then
          updatePO(e, function(l)
            l.loc = l.loc or e.l
            l.r = num(l.r) + e.q
          end)
        end
      elseif t == 'ADJUSTMENT' then
        status = movement(e, e.q)
      elseif t == 'SHIPMENT' then
        status = movement(e, -e.q)
        updateLine(e, function(l)
          if not l.loc then l.loc = e.l end
          l.s = num(l.s) + e.q
        end)
      elseif t == 'PICK' then
        touch(e.l)
        updateLine(e, function(l)
          if not l.loc then l.loc = e.l end
          l.p = num(l.p) + e.q
        end)
      elseif t == 'COUNT' then
        status = count(e)
      elseif t == 'ORDER_LINE' then
        if e.hid and e.l then releaseHold(e.hid .. '|' .. e.l, 'converted') end
        updateLine(e, function(l)
          l.o = e.q
          if e.l then l.loc = e.l elseif not l.loc then l.grp = e.g end
          l.ch = e.ch
        end)
      elseif t == 'ORDER_CANCEL' then
        updateLine(e, function(l) l.c = 1 end)
      elseif t == 'ORDER_ALLOCATE' then
        updateLine(e, function(l) l.loc = e.l end)
      elseif t == 'PO_LINE' then
        updatePO(e, function(l)
          l.loc = e.l
          l.q = e.q
          l.ed = e.ed
        end)
      elseif t == 'PO_ACK' then
        updatePO(e, function(l)
          l.loc = l.loc or e.l
          l.st = e.st
          l.aq = e.q
          l.ad = e.ed
        end)
      elseif t == 'ASN_LINE' then
        updatePO(e, function(l)
          l.loc = l.loc or e.l
          l.an = l.an or {}
          l.an[e.asn] = e.q
          l.eta = e.eta
        end)
      elseif t == 'PO_CLOSE' then
        updatePO(e, function(l) l.cl = 1 end)
      elseif t == 'ITEM_POLICY' or t == 'POLICY' then
        touch(e.l)
        if e.ss then redis.call('HSET', pkey(e.l), 'ss', e.ss) end
        if e.rop then redis.call('HSET', pkey(e.l), 'rop', e.rop) end
      elseif t == 'HOLD' then
        status = hold(e)
      elseif t == 'HOLD_RELEASE' then
        releaseHold(e.hid .. '|' .. e.l, 'released')
      else
        status = 'unknown'
      end
      lineage[#lineage + 1] = e.p .. ':' .. e.o .. '|' .. e.eid .. '|' .. (e.cid or '') .. '|' .. t .. '|' .. (e.l or e.g or '')
    end
  end
  statuses[#statuses + 1] = status
end

-- Once per call: watermarks and the lineage list.
for pk, o in pairs(marks) do
  if o >= 0 then redis.call('HSET', wkey, pk, o) end
end
if #lineage > 0 then
  local from = math.max(1, #lineage - logCap + 1)
  redis.call('LPUSH', P .. ':log', unpack(lineage, from))
  redis.call('LTRIM', P .. ':log', 0, logCap - 1)
end

local positions = {}
for _, loc in ipairs(order) do
  local row = {loc}
  for _, v in ipairs(touched[loc]) do row[#row + 1] = v end
  for _, v in ipairs(snap(loc)) do row[#row + 1] = v end
  row[#row + 1] = redis.call('HINCRBY', pkey(loc), 'v', 1)
  positions[#positions + 1] = row
end
return {statuses, positions}
