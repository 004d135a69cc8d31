-- wrk script: one fixed request. args: <method> <path> [delay ms per request]
function init(args)
  method, path, pace = args[1], args[2], tonumber(args[3] or "0")
  body = method == "POST" and '{"action_token":"x","score_delta":1,"completed_at":1,"signature":"00"}' or nil
end

function delay()
  return pace
end

function request()
  return wrk.format(method, path, {["Content-Type"] = "application/json"}, body)
end
