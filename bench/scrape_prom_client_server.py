"""What a service of the original Python design would serve: the same series through
prometheus_client. Used by scripts/bench-scrape.sh, never by the tests.

Loads a saved infraaudit exposition (Prometheus text format) into plain Python data at start,
then on every scrape a custom Collector builds the metric families from that data afresh, as an
exporter that keeps its posture data in Python objects would, and prometheus_client's own
start_http_server encodes and serves them.

Usage: scrape_prom_client_server.py EXPOSITION PORT  (prints "listening 127.0.0.1:PORT")
"""

import re
import sys
import threading

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return v.replace('\\n', '\n').replace('\\"', '"').replace('\\\\', '\\')


def load(path):
    """[(type, name, help, labelnames, [(labelvalues, value)])] in exposition order."""
    families, by_name, helps, types = [], {}, {}, {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if line.startswith('# HELP '):
                name, _, text = line[7:].partition(' ')
                helps[name] = unescape(text)
            elif line.startswith('# TYPE '):
                name, _, kind = line[7:].partition(' ')
                types[name] = kind
            elif line and not line.startswith('#'):
                m = SAMPLE.match(line)
                if not m:
                    raise SystemExit(f'unparsed line: {line!r}')
                name, labels, value = m.groups()
                pairs = [(k, unescape(v)) for k, v in LABEL.findall(labels or '')]
                kind = types.get(name, 'gauge')
                base = name[:-6] if kind == 'counter' and name.endswith('_total') else name
                if kind not in types.get(name, ''):
                    kind = 'counter' if types.get(base) == 'counter' else kind
                key = (base, tuple(k for k, _ in pairs))
                fam = by_name.get(key)
                if fam is None:
                    fam = (kind, base, helps.get(name, helps.get(base, '')), [k for k, _ in pairs], [])
                    by_name[key] = fam
                    families.append(fam)
                fam[4].append(([v for _, v in pairs], float(value)))
    return families


class SnapshotCollector(Collector):
    def __init__(self, families):
        self.families = families

    def collect(self):
        for kind, name, help_text, labelnames, samples in self.families:
            cls = CounterMetricFamily if kind == 'counter' else GaugeMetricFamily
            fam = cls(name, help_text, labels=labelnames)
            for values, value in samples:
                fam.add_metric(values, value)
            yield fam


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    families = load(path)
    REGISTRY.register(SnapshotCollector(families))
    start_http_server(port, addr='127.0.0.1')
    print(f'series {sum(len(f[4]) for f in families)}', flush=True)
    print(f'listening 127.0.0.1:{port}', flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()
