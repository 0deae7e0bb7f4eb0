-- wrk script: POST the file named by the BODY environment variable, and
-- print the latency percentiles in a form bench.sh can read. wrk itself
-- reports any non-2xx answers. When PATHS names a file of request paths
-- (one a line), the requests go to them in turn, round and round, rather
-- than to the URL given to wrk: the delivery benchmark posts with the
-- options of its misses, so that both do the same image work.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"

local paths = {}
if os.getenv("PATHS") then
  for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
end
local counter = 0

if #paths > 0 then
  function request()
    counter = counter + 1
    return wrk.format(nil, paths[(counter % #paths) + 1])
  end
end

-- done(): the RESULT line, from wrk-result.lua beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-result.lua")
