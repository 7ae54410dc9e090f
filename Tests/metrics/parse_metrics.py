#!/usr/bin/env python3
"""Parses a Prometheus text exposition (a file, or stdin) with prometheus_client's
own parser and prints it as JSON for MetricsEndpointTests:
{"families": [{"name", "type", "help", "samples": [{"name", "labels", "value"}]}]}.
A text the parser refuses exits 1 with its error."""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is not installed (scripts/install-deps.sh installs it)")

text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
try:
    families = [{
        "name": f.name, "type": f.type, "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    } for f in text_string_to_metric_families(text)]
except Exception as e:  # the parser's own words
    sys.exit(f"not valid Prometheus text: {e}")
print(json.dumps({"families": families}))
