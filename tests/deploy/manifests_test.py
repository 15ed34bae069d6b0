#!/usr/bin/python3
"""Offline checks of the manifests under deploy/ (docs/serving.md, "Validation").

No cluster, no kubectl and no OpenAPI schemas are available here, so this
checks what can be checked against the project itself:

  * every YAML document under deploy/ parses and has apiVersion, kind and
    metadata.name; its kind is one this test knows (a new kind must be taught
    here), with the apiVersion that kind has;
  * Deployment: the selector matches the pod template's labels; each
    container has an image, and its probes are HTTP GETs of paths the server
    serves, on the port the container declares and `serve --port` listens
    on; CPU requests and limits are whole cores equal to --threads; the grace
    period covers preStop plus --timeout-ms; the prometheus.io annotations
    name that port and /metrics;
  * Service: selects the Deployment's pods, and its targetPort is the
    container's;
  * HorizontalPodAutoscaler: targets the Deployment, on the metric the
    prometheus-adapter rule produces, whose query reads counters the server
    exports (src/serving/metrics.cc);
  * KServe: the InferenceService uses the ServingRuntime, with protocolVersion
    v2, a model format the runtime supports;
  * every container's arguments (and the Dockerfile's CMD) are `damoyolo
    serve` options: each --option appears in the built CLI's `serve --help`;
    then each container's command line is RUN, with only --model (the
    repository's copy), --host (loopback), --port (0) and --threads (1)
    replaced, and every probe path and the model's v2 ready endpoint must
    answer 200 before SIGTERM, after which the server must exit 0.

Usage: manifests_test.py SOURCE_DIR DAMOYOLO_EXECUTABLE
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

try:
    import yaml
except ImportError:
    print("manifests_test: SKIP: no PyYAML (Debian's python3-yaml; scripts/install-deps.sh installs it)", file=sys.stderr)
    sys.exit(77)  # ctest: skipped

SOURCE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = sys.argv[2] if len(sys.argv) > 2 else os.path.join(SOURCE, "build", "bin", "damoyolo")

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def get(obj, *path, default=None):
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


# --- what the project says ---------------------------------------------------

HELP = subprocess.run([CLI, "serve", "--help"], capture_output=True, text=True, check=True).stdout
HELP_OPTIONS = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", HELP))

with open(os.path.join(SOURCE, "src", "serving", "server.cc")) as f:
    SERVER_SOURCE = f.read()
with open(os.path.join(SOURCE, "src", "serving", "metrics.cc")) as f:
    METRIC_NAMES = set(re.findall(r'"(damoyolo_[a-z_]+)"', f.read()))

# The GET paths the server answers without a model name, each found as a
# literal in its routing code (so a renamed route fails here too).
SERVED_GET_PATHS = {p for p in ("/v2/health/live", "/v2/health/ready", "/metrics", "/v2")
                    if check(f'"{p}"' in SERVER_SOURCE, f"src/serving/server.cc no longer routes {p}")}

KNOWN = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ConfigMap": "v1",
    "ServingRuntime": "serving.kserve.io/v1alpha1",
    "InferenceService": "serving.kserve.io/v1beta1",
}

# --- load ----------------------------------------------------------------------

docs = []  # (file, document)
files = sorted(glob.glob(os.path.join(SOURCE, "deploy", "**", "*.yaml"), recursive=True) +
               glob.glob(os.path.join(SOURCE, "deploy", "**", "*.yml"), recursive=True))
check(files, "no YAML under deploy/")
for path in files:
    rel = os.path.relpath(path, SOURCE)
    try:
        with open(path) as f:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        check(False, f"{rel}: not valid YAML: {e}")
        continue
    check(loaded, f"{rel}: no document")
    for d in loaded:
        where = f"{rel} ({d.get('kind', '?')} {get(d, 'metadata', 'name', default='?')})"
        if not check(isinstance(d, dict), f"{rel}: a document is not a mapping"):
            continue
        for field in ("apiVersion", "kind"):
            check(isinstance(d.get(field), str) and d[field], f"{where}: no {field}")
        check(isinstance(get(d, "metadata", "name"), str), f"{where}: no metadata.name")
        kind = d.get("kind")
        if check(kind in KNOWN, f"{where}: kind {kind} is unknown to this test; teach it the kind's checks"):
            check(d.get("apiVersion") == KNOWN[kind],
                  f"{where}: apiVersion {d.get('apiVersion')}, expected {KNOWN[kind]}")
        docs.append((rel, d))


def of_kind(kind):
    return [(rel, d) for rel, d in docs if d.get("kind") == kind]


# --- containers ------------------------------------------------------------------

def option_values(args):
    """--opt=value / --opt value / --flag → {"--opt": "value" or None}."""
    out, i = {}, 0
    while i < len(args):
        a = str(args[i])
        if a.startswith("--"):
            if "=" in a:
                k, v = a.split("=", 1)
                out[k] = v
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("-"):
                out[a] = str(args[i + 1])
                i += 1
            else:
                out[a] = None
        i += 1
    return out


def cpu_cores(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def check_serve_args(where, args):
    """The arguments of `damoyolo ARGS`: serve and its options."""
    if not check(isinstance(args, list) and args and args[0] == "serve",
                 f"{where}: the container's args do not start with 'serve' (the image's entrypoint is damoyolo)"):
        return {}
    opts = option_values(args[1:])
    for o in opts:
        check(o in HELP_OPTIONS, f"{where}: {o} is not an option of `damoyolo serve` (not in its --help)")
    for a in args[1:]:
        a = str(a)
        check(not (a.startswith("-") and not a.startswith("--")),
              f"{where}: short option {a}: use the long form (this test reads long ones)")
    check("--model" in opts, f"{where}: no --model")
    check(opts.get("--host") == "0.0.0.0", f"{where}: --host is {opts.get('--host')}, a pod must listen on 0.0.0.0")
    return opts


containers = []  # (where, container, opts, pod annotations, pod spec)

for rel, d in of_kind("Deployment"):
    where = f"{rel} Deployment {d['metadata']['name']}"
    selector = get(d, "spec", "selector", "matchLabels", default={})
    labels = get(d, "spec", "template", "metadata", "labels", default={})
    check(selector and all(labels.get(k) == v for k, v in selector.items()),
          f"{where}: spec.selector.matchLabels {selector} does not match the template's labels {labels}")
    pod = get(d, "spec", "template", "spec", default={})
    check(get(pod, "containers"), f"{where}: no containers")
    for c in get(pod, "containers", default=[]):
        check(c.get("image") and c.get("name"), f"{where}: a container without image or name")
        containers.append((f"{where} container {c.get('name')}", c, check_serve_args(where, c.get("args")),
                           get(d, "spec", "template", "metadata", "annotations", default={}), pod))

runtimes = {}
for rel, d in of_kind("ServingRuntime"):
    where = f"{rel} ServingRuntime {d['metadata']['name']}"
    runtimes[d["metadata"]["name"]] = d
    check("v2" in get(d, "spec", "protocolVersions", default=[]), f"{where}: protocolVersions lacks v2")
    check(get(d, "spec", "supportedModelFormats"), f"{where}: no supportedModelFormats")
    cs = get(d, "spec", "containers", default=[])
    check(len(cs) == 1 and cs[0].get("name") == "kserve-container",
          f"{where}: expected one container named kserve-container (KServe's name for the serving container)")
    for c in cs:
        containers.append((f"{where} container {c.get('name')}", c, check_serve_args(where, c.get("args")), {}, {}))

isvcs = of_kind("InferenceService")
for rel, d in isvcs:
    where = f"{rel} InferenceService {d['metadata']['name']}"
    model = get(d, "spec", "predictor", "model", default={})
    check(model.get("protocolVersion") == "v2", f"{where}: predictor.model.protocolVersion is not v2")
    rt = runtimes.get(model.get("runtime"))
    if check(rt is not None, f"{where}: runtime {model.get('runtime')} is not a ServingRuntime under deploy/"):
        formats = [f.get("name") for f in get(rt, "spec", "supportedModelFormats", default=[])]
        check(get(model, "modelFormat", "name") in formats,
              f"{where}: modelFormat {get(model, 'modelFormat', 'name')} is not one the runtime supports ({formats})")

for where, c, opts, annotations, pod in containers:
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    numbers = set(ports.values())
    listen = int(opts.get("--port", 8080))  # serve's default port
    check(numbers == {listen}, f"{where}: containerPort {sorted(numbers)} but serve --port {listen}")

    def port_of(p):
        return ports.get(p) if isinstance(p, str) else p

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = c.get(probe)
        if spec is None:
            check(not pod, f"{where}: no {probe}")  # required of the Deployment; KServe sets its own
            continue
        path, port = get(spec, "httpGet", "path"), get(spec, "httpGet", "port")
        check(path in SERVED_GET_PATHS, f"{where}: {probe} GETs {path}, which the server does not serve")
        check(port_of(port) == listen, f"{where}: {probe} port {port} is not the port serve listens on ({listen})")
    if pod:
        check(get(c, "readinessProbe", "httpGet", "path") == "/v2/health/ready",
              f"{where}: readinessProbe should be /v2/health/ready")
        check(get(c, "livenessProbe", "httpGet", "path") == "/v2/health/live",
              f"{where}: livenessProbe should be /v2/health/live")
    threads = opts.get("--threads")
    res = c.get("resources", {})
    if check(threads is not None and threads != "0", f"{where}: no --threads (0 = every core of the node, not the pod's)"):
        for kind in ("requests", "limits"):
            cpu = get(res, kind, "cpu")
            check(cpu is not None and cpu_cores(cpu) == int(threads),
                  f"{where}: resources.{kind}.cpu {cpu} is not --threads {threads} cores")
    if annotations:
        check(annotations.get("prometheus.io/scrape") == "true", f"{where}: prometheus.io/scrape is not \"true\"")
        check(str(annotations.get("prometheus.io/port")) == str(listen),
              f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} is not {listen}")
        check(annotations.get("prometheus.io/path") == "/metrics", f"{where}: prometheus.io/path is not /metrics")
    if pod:
        grace = pod.get("terminationGracePeriodSeconds", 30)
        pre = get(c, "lifecycle", "preStop", "exec", "command", default=[])
        sleep = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
        timeout_s = int(opts.get("--timeout-ms", 0)) / 1000
        check(timeout_s > 0, f"{where}: no --timeout-ms: an accepted request could outlast the grace period")
        check(grace > sleep + timeout_s, f"{where}: terminationGracePeriodSeconds {grace} does not cover preStop "
              f"({sleep} s) plus --timeout-ms ({timeout_s} s)")

# --- Service ---------------------------------------------------------------------

deployments = of_kind("Deployment")
for rel, d in of_kind("Service"):
    where = f"{rel} Service {d['metadata']['name']}"
    sel = get(d, "spec", "selector", default={})
    targets = [dd for _, dd in deployments
               if sel and all(get(dd, "spec", "template", "metadata", "labels", default={}).get(k) == v
                              for k, v in sel.items())]
    if check(targets, f"{where}: selector {sel} selects no Deployment's pods"):
        cports = {}
        for c in get(targets[0], "spec", "template", "spec", "containers", default=[]):
            for p in c.get("ports", []):
                cports[p.get("name")] = p.get("containerPort")
        for p in get(d, "spec", "ports", default=[]):
            t = p.get("targetPort", p.get("port"))
            check((cports.get(t) if isinstance(t, str) else t) in cports.values(),
                  f"{where}: targetPort {t} is no container port of the selected pods")

# --- HPA and the adapter rule ------------------------------------------------------

adapter_names = set()
for rel, d in of_kind("ConfigMap"):
    where = f"{rel} ConfigMap {d['metadata']['name']}"
    text = get(d, "data", "config.yaml")
    if not check(isinstance(text, str), f"{where}: no data.config.yaml (the adapter's config)"):
        continue
    config = yaml.safe_load(text)
    for rule in get(config, "rules", default=[]):
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule.get("seriesQuery", ""))
        check(series and series.group(1) in METRIC_NAMES,
              f"{where}: seriesQuery {rule.get('seriesQuery')} is not a metric the server exports")
        matches, name = get(rule, "name", "matches"), get(rule, "name", "as")
        check(series and matches and re.search(matches, series.group(1)),
              f"{where}: name.matches {matches} does not match the series {series and series.group(1)}")
        check(name, f"{where}: the rule has no name.as")
        adapter_names.add(name)
        query = rule.get("metricsQuery", "")
        used = set(re.findall(r"\b(damoyolo_[a-z_]+)\{", query))
        check(used, f"{where}: metricsQuery reads no damoyolo_ metric")
        for m in used:
            check(m in METRIC_NAMES, f"{where}: metricsQuery reads {m}, which src/serving/metrics.cc does not export")
        check({"damoyolo_inference_queue_duration_us", "damoyolo_inference_count"} <= used,
              f"{where}: metricsQuery should divide the rate of queue_duration_us by that of inference_count")
        check("<<.LabelMatchers>>" in query and "<<.GroupBy>>" in query,
              f"{where}: metricsQuery lacks the adapter's <<.LabelMatchers>> / <<.GroupBy>>")
        for label, resource in (("namespace", "namespace"), ("pod", "pod")):
            check(get(rule, "resources", "overrides", label, "resource") == resource,
                  f"{where}: resources.overrides does not map label {label} to the {resource} resource")

for rel, d in of_kind("HorizontalPodAutoscaler"):
    where = f"{rel} HorizontalPodAutoscaler {d['metadata']['name']}"
    ref = get(d, "spec", "scaleTargetRef", default={})
    check(ref.get("kind") == "Deployment" and ref.get("apiVersion") == "apps/v1" and
          ref.get("name") in [dd["metadata"]["name"] for _, dd in deployments],
          f"{where}: scaleTargetRef {ref} is not a Deployment under deploy/")
    lo, hi = get(d, "spec", "minReplicas", default=1), get(d, "spec", "maxReplicas")
    check(isinstance(hi, int) and 1 <= lo <= hi, f"{where}: minReplicas {lo} / maxReplicas {hi}")
    metrics = get(d, "spec", "metrics", default=[])
    check(metrics, f"{where}: no metrics")
    for m in metrics:
        if check(m.get("type") == "Pods", f"{where}: a metric of type {m.get('type')}, expected Pods"):
            name = get(m, "pods", "metric", "name")
            check(name in adapter_names, f"{where}: metric {name} is not produced by the adapter rule ({adapter_names})")
            check(get(m, "pods", "target", "type") == "AverageValue" and get(m, "pods", "target", "averageValue"),
                  f"{where}: a Pods metric needs target type AverageValue with averageValue")

# --- the Dockerfile's CMD ------------------------------------------------------------

with open(os.path.join(SOURCE, "deploy", "Dockerfile")) as f:
    dockerfile = f.read()
cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
if check(cmd, "deploy/Dockerfile: no CMD in exec form"):
    check_serve_args("deploy/Dockerfile CMD", json.loads(cmd.group(1)))
check(re.search(r'^ENTRYPOINT \["damoyolo"\]$', dockerfile, re.M), "deploy/Dockerfile: ENTRYPOINT is not [\"damoyolo\"]")
check(re.search(r"^USER (?!0\b|root\b)\S+", dockerfile, re.M), "deploy/Dockerfile: does not switch to a non-root USER")

# --- run each container's command line -----------------------------------------------

def run_server(where, c, name_substitute):
    """Runs the container's `damoyolo serve` locally and GETs its probe paths."""
    args = [str(a).replace("{{.Name}}", name_substitute) for a in c["args"]]
    opts = option_values(args[1:])
    replaced = []
    for a in args:
        key = a.split("=", 1)[0]
        if key == "--model":
            a = "--model=" + os.path.join(SOURCE, "models", os.path.basename(a.split("=", 1)[1]))
        elif key == "--host":
            a = "--host=127.0.0.1"
        elif key == "--port":
            a = "--port=0"
        elif key == "--threads":
            a = "--threads=1"
        replaced.append(a)
    if "--port" not in opts:
        replaced.append("--port=0")
    name = opts.get("--name") or os.path.splitext(os.path.basename(opts.get("--model", "")))[0]
    proc = subprocess.Popen([CLI] + replaced, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = False
    try:
        line = proc.stdout.readline().strip()
        m = re.fullmatch(r"listening 127\.0\.0\.1:(\d+)", line)
        if not check(m, f"{where}: `damoyolo {' '.join(replaced)}` did not start: {line or proc.stderr.read()[-400:]}"):
            return
        started = True
        base = f"http://127.0.0.1:{m.group(1)}"
        paths = [get(spec, "httpGet", "path") for spec in (c.get(p) for p in ("startupProbe", "readinessProbe",
                                                                              "livenessProbe")) if spec]
        for path in sorted(set(paths)) + [f"/v2/models/{name}/ready", "/metrics"]:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    check(r.status == 200, f"{where}: GET {path} answered {r.status}")
            except Exception as e:  # HTTPError (non-2xx) included
                check(False, f"{where}: GET {path} failed: {e}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        # One that did not start is reported above, with its message.
        if started:
            check(rc == 0, f"{where}: the server exited {rc} after SIGTERM, expected 0")


isvc_name = isvcs[0][1]["metadata"]["name"] if isvcs else "model"
for where, c, opts, _, _ in containers:
    if opts:
        run_server(where, c, isvc_name)

# --- report ----------------------------------------------------------------------------

print(f"manifests_test: {len(docs)} objects in {len(files)} files; {len(containers)} containers run")
if failures:
    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    sys.exit(1)
print("manifests_test: PASS")
