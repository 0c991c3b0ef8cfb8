-- Orthanc as the PACS router: every instance received by DICOM is
-- forwarded to triaged, except what triaged itself sends back (its
-- structured reports and heatmaps), which would otherwise loop.
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin["RequestOrigin"] == "DicomProtocol" and origin["RemoteAet"] ~= "TRIAGED" then
    SendToModality(instanceId, "triaged")
  end
end
