-- Reads everything the ledger engine keeps of one SKU in one call: a gather
-- of the SKU's keys, with no ledger semantics in it.
--
-- KEYS[1] "sf:{SKU}". Returns { locations, watermarks, order lines, PO
-- lines, holds, the newest dedupe id (with its score), unpublished outputs,
-- then per location: its position hash and its movement journal (with
-- scores) }. The other dedupe ids stay in Redis: the folder asks for the
-- ones it needs (ZMSCORE) before it folds entries.
local P = KEYS[1]
local locs = redis.call('SMEMBERS', P .. ':locs')
local out = {
  locs,
  redis.call('HGETALL', P .. ':w'),
  redis.call('HGETALL', P .. ':ol'),
  redis.call('HGETALL', P .. ':po'),
  redis.call('HGETALL', P .. ':h'),
  redis.call('ZRANGE', P .. ':e', -1, -1, 'WITHSCORES'),
  redis.call('HGETALL', P .. ':ob'),
}
for _, l in ipairs(locs) do
  out[#out + 1] = redis.call('HGETALL', P .. ':p:' .. l)
  out[#out + 1] = redis.call('ZRANGE', P .. ':j:' .. l, 0, -1, 'WITHSCORES')
end
return out
