-- Stores one SKU's changes, guarded by its watermarks: the changes apply
-- only when, for every partition the writer folded, Redis still has the
-- watermark the writer's state was loaded or last stored with. A writer that
-- lost its partition (a zombie), or whose Redis went back in time, changes
-- nothing and learns it must reload. Generic: the changes are Redis commands
-- on the SKU's own keys, so every key stays in the SKU's hash slot.
--
-- KEYS[1] "sf:{SKU}".
-- ARGV[1] n, then n triples (partition, expected watermark or -1, new watermark),
-- then commands: name, key suffix (the channel for PUBLISH), argument count, arguments.
-- Returns 1 when stored, 0 when refused.
local P = KEYS[1]
local w = P .. ':w'
local n = tonumber(ARGV[1])
for k = 0, n - 1 do
  local cur = tonumber(redis.call('HGET', w, ARGV[2 + 3 * k])) or -1
  if cur ~= tonumber(ARGV[3 + 3 * k]) then return 0 end
end
for k = 0, n - 1 do
  redis.call('HSET', w, ARGV[2 + 3 * k], ARGV[4 + 3 * k])
end
local i = 2 + 3 * n
while i <= #ARGV do
  local cmd, c = ARGV[i], tonumber(ARGV[i + 2])
  if cmd == 'PUBLISH' then
    redis.call('PUBLISH', ARGV[i + 1], ARGV[i + 3])
  else
    redis.call(cmd, P .. ARGV[i + 1], unpack(ARGV, i + 3, i + 2 + c))
  end
  i = i + 3 + c
end
return 1
