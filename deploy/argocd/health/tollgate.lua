-- Argo CD health of tollgate.dev resources (VirtualKey, ProviderCredential).
-- Healthy when the Ready condition is True, Degraded with the condition's message when it is
-- False, Progressing while the operator has not reported on the current generation.
-- Plain Lua 5.1, as Argo CD's gopher-lua runs it; tests/chart evaluates it on sample objects.
local hs = {}

local function ready_condition(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.message or ""
  if condition.reason ~= nil and condition.reason ~= "" then
    if text == "" then
      return condition.reason
    end
    return condition.reason .. ": " .. text
  end
  return text
end

local generation = obj.metadata and obj.metadata.generation
local ready = ready_condition(obj.status)

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tollgate operator to report the Ready condition"
  return hs
end

local observed = ready.observedGeneration or (obj.status and obj.status.observedGeneration)
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tollgate operator to process generation " .. generation
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
