"""Upstream links made to point at Vigie, and what a paged answer may say about its size.

- `urls`: every spelling of the upstream's absolute URLs, and their rewriting;
- `public`: the public base of a request (`public_url`, trusted `X-Forwarded-*`, Host);
- `response`: the rewriting of one outgoing response (headers, whole and streamed bodies);
- `rewriter`: the seam the proxy uses (`LinkRewriter`, `RequestLinks`);
- `totals`: `total` counts removed where bind withholds records.

Nothing is imported here: the minimizer uses `totals` and `response` uses the
minimizer's stream helpers, so each module is imported by its own name.
"""
