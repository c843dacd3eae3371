-- Claims queued arq jobs for one worker, as arq's own claim does (WATCH, EXISTS, ZSCORE,
-- MULTI/PSETEX/EXEC, four round trips per job) but for a whole batch in one step.
-- KEYS[1]: the queue. ARGV: now (ms), in-progress mark lifetime (ms), mark prefix, how many to
-- claim at most, task key prefix, how many record fields follow, the record fields, then the
-- job ids. A job is claimed when it is still queued, due, and not marked in progress by anyone;
-- running jobs stay in arq's queue until they end, and are skipped. For each claimed job: its
-- id, its score, and its task's record fields as read at that moment (a job id starts with its
-- task's id), which saves the job a read of its own.
local field_count = tonumber(ARGV[6])
local fields = {}
for i = 1, field_count do fields[i] = ARGV[6 + i] end
local claimed = {}
local wanted = tonumber(ARGV[4])
local count = 0
for i = 7 + field_count, #ARGV do
  if count >= wanted then break end
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  local mark = ARGV[3] .. ARGV[i]
  if score and tonumber(score) <= tonumber(ARGV[1]) and redis.call('EXISTS', mark) == 0 then
    redis.call('PSETEX', mark, ARGV[2], '1')
    local task = redis.call('HMGET', ARGV[5] .. string.match(ARGV[i], '^[^:]+'), unpack(fields))
    claimed[#claimed + 1] = ARGV[i]
    claimed[#claimed + 1] = score
    for _, value in ipairs(task) do claimed[#claimed + 1] = value end
    count = count + 1
  end
end
return claimed
