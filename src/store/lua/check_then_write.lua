-- Atomic check-then-write. ARGV[1] is a JSON plan {"guards": [...], "writes": [...]}.
-- Each guard is [expected, command, args...]: the command's reply as a string ("" for nil) must
-- equal `expected`, else nothing more is written and {index of the failed guard, what it read} is
-- returned. Guards should only read, except the last one, which may take its own write.
-- Then every write [command, args...] runs, in order, and {0, ""} is returned.
local plan = cjson.decode(ARGV[1])
for i, guard in ipairs(plan.guards) do
  local got = redis.call(unpack(guard, 2))
  if not got then got = "" end
  got = tostring(got)
  if got ~= guard[1] then return {i, got} end
end
for _, write in ipairs(plan.writes) do
  redis.call(unpack(write))
end
return {0, ""}
