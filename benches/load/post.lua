-- wrk script for `run.sh --body SIZE`: every request is a POST of SIZE bytes.
--
--   wrk -t1 -c32 -d10s --latency -s post.lua http://127.0.0.1:PORT/bench -- 1048576
--
-- The body is built once per wrk thread and the request is pre-formatted by wrk (no
-- request() or response() function here, so wrk neither calls Lua per request nor parses
-- response bodies: the script costs nothing while measuring). wrk adds Content-Length.

function init(args)
   local size = tonumber(args[1] or "")
   if size == nil or size < 0 then
      error("post.lua: pass the body size in bytes after --, e.g. -- 1048576")
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/octet-stream"
   wrk.body = string.rep("x", size)
end
