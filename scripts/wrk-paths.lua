-- wrk script: GET the paths of the file named by PATHS in turn, each
-- thread (THREADS of them, as wrk's -t) its own share, so that no path is
-- asked for twice while there are paths left (the delivery benchmark's
-- misses); then the same RESULT line as wrk-get.lua.
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local nthreads = tonumber(os.getenv("THREADS") or "1")
local started = 0

function setup(thread)
  thread:set("id", started)
  started = started + 1
end

local counter = 0

function request()
  local i = counter * nthreads + id
  counter = counter + 1
  if i >= #paths then
    io.stderr:write("wrk-paths.lua: out of paths: a path is asked for again\n")
  end
  return wrk.format("GET", paths[(i % #paths) + 1])
end

-- done(): the RESULT line, from wrk-result.lua beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-result.lua")
