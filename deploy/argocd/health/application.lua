-- Argo CD health of an Application (argoproj.io), so an app of apps waits for a child's
-- health before its next sync wave: Argo CD no longer assesses it by default.
local hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
