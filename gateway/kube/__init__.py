"""The gateway's Kubernetes features: config through the API, and status on the VirtualKeys.

    options.py     `--watch-configmaps NAMESPACE/NAME` and friends (standard library only)
    client.py      the only module that talks to the API server (aiohttp; in-cluster service
                   account or a kubeconfig)
    lease.py       leader election on a coordination.k8s.io Lease; standard library only, so
                   the operator shares it (the one gateway module it may import besides
                   `config.models`)
    configmaps.py  list + watch the operator's ConfigMaps, merge whole sets of parts, swap the
                   config; the mounted directory as the fallback
    revisions.py   the order in which this process served revisions, and each key's since when
    roster.py      every replica's served config revision, in one Lease's annotation
    activity.py    per-key request counts, read from the pipeline's Prometheus counter
    figures.py     per-key figures and conditions (pure): what the publisher would write
    status.py      the status publisher: one replica at a time, only changed keys, backing off
    cluster.py     wires the above into the app's lifespan (`create_app(..., cluster=...)`)

Nothing here runs unless the gateway is started with `--watch-configmaps`; standalone gateways
never load the API client. This `__init__` imports nothing, so importing
`tollgate.gateway.kube.lease` (the operator does) stays cheap.
"""
