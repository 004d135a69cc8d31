-- wrk script: each request posts the next prepared body (one action token each) with its
-- own Authorization header. args: <file with "jwt<TAB>json" lines> [delay ms per request]
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  pace = tonumber(args[2] or "0")
  stride = tonumber(args[3] or "1")
  i = tid
end

function delay()
  return pace
end

function request()
  local line = lines[(i % #lines) + 1]
  i = i + stride
  local tab = string.find(line, "\t", 1, true)
  local headers = {["Authorization"] = "Bearer " .. string.sub(line, 1, tab - 1),
                   ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/api/score/update", headers, string.sub(line, tab + 1))
end
