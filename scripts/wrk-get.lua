-- wrk script: GET the URL given, and print the latency percentiles in the
-- form bench.sh reads (as wrk-post.lua does for POST /resize).

-- done(): the RESULT line, from wrk-result.lua beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk-result.lua")
