"""The gateway's Kubernetes features: config through the API, and status on the VirtualKeys.

    client.py      the only module that talks to the API server (aiohttp; in-cluster service
                   account or a kubeconfig)
    lease.py       leader election on a coordination.k8s.io Lease; standard library only, so
                   the operator shares it (the one gateway module it may import besides
                   `config.models`)
    configmaps.py  list + watch the operator's ConfigMaps, merge the parts, swap the config
    roster.py      every replica's served config revision, in one Lease's annotation
    figures.py     per-key figures and conditions (pure): what the publisher would write
    status.py      the status publisher: one replica at a time, throttled, backing off
    cluster.py     wires the above into the app's lifespan (`create_app(..., cluster=...)`)

Nothing here runs unless the gateway is started with `--watch-configmaps NAMESPACE/NAME`;
standalone gateways never import aiohttp's API client. This `__init__` imports nothing, so
importing `tollgate.gateway.kube.lease` stays cheap.
"""
