"""Mail authentication: DKIM, ARC, SPF, DMARC and Authentication-Results.

`step` is the one entry point the pipeline uses: verification before
scanning (inbound bank), signing over the exact bytes reinjected
(originating bank). DNS goes through `dns.Resolver` under a per-message
`dns.Budget`, so the event loop never waits on a lookup and a slow or
broken DNS gives `temperror`, never a block by itself.
"""
