import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ToolLimits } from '@toolplane/core';
import { PlannerConfig } from '@toolplane/planner/config';
import { WorkerConfig } from '@toolplane/worker/config';
import { promtool } from '../support/prometheus.js';
import { ROOT } from '../support/services.js';

const K8S = join(ROOT, 'infra/k8s');
const OVERLAYS = ['local', 'redis-cluster', 'postgres'];

type Doc = { file: string; [key: string]: any };

/** The JSON schemas of Kubernetes 1.27 and KEDA 2, compiled into these model classes (offline). */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

function parseFile(path: string): Doc[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => {
    expect(d.errors, relative(ROOT, path)).toEqual([]);
    return { ...(d.toJS() as object), file: relative(K8S, path) };
  });
}

const files = yamlFiles(K8S);
const kustomizations = files.filter((f) => f.endsWith('kustomization.yaml'));
/** Files listed as patches are partial documents; everything else listed as a resource is complete. */
const patchFiles = new Set(
  kustomizations.flatMap((k) => ((parseFile(k)[0]!.patches ?? []) as Array<{ path: string }>).map((p) => join(dirname(k), p.path))),
);
const manifests = files.filter((f) => !kustomizations.includes(f) && !patchFiles.has(f)).flatMap(parseFile);
const byKind = (kind: string) => manifests.filter((d) => d.kind === kind);
const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')];
const workload = (name: string) => workloads.find((w) => w.metadata.name === name)!;
const container = (name: string) => workload(name).spec.template.spec.containers[0];

/** Whether an IPv4 or IPv6 address lies in a CIDR block of the same family. */
function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const v6 = ip.includes(':');
  if (v6 !== net!.includes(':')) return false;
  const width = v6 ? 128 : 32;
  const bits = BigInt(bitsText ?? width);
  const mask = ((1n << bits) - 1n) << (BigInt(width) - bits);
  return (toBigInt(ip) & mask) === (toBigInt(net!) & mask);
}

function toBigInt(ip: string): bigint {
  if (!ip.includes(':')) return ip.split('.').reduce((acc, part) => (acc << 8n) + BigInt(part), 0n);
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g, 16)), 0n);
}

/** A container port by name or number, or undefined. */
function findPort(ctr: any, port: string | number): any {
  return (ctr.ports ?? []).find((p: any) => p.name === port || p.containerPort === port);
}

/** Stand-ins for what the operator puts in the Secret (never in the manifests), valid for the schemas. */
const SECRET_STANDINS: Record<string, string> = { TOOLPLANE_ADMIN_KEY: 'a'.repeat(32), TOOLPLANE_SECRETS_KEY: '0'.repeat(64) };

/**
 * The environment a container starts with: envFrom ConfigMaps, then env. Required secret refs get a
 * stand-in value; optional ones are left out (the Secret may lack them).
 */
function containerEnv(ctr: any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of ctr.envFrom ?? []) {
    const cm = byKind('ConfigMap').find((c) => c.metadata.name === from.configMapRef?.name);
    expect(cm, `ConfigMap ${from.configMapRef?.name}`).toBeDefined();
    Object.assign(env, cm!.data);
  }
  for (const e of ctr.env ?? []) {
    if (!e.valueFrom?.secretKeyRef) env[e.name] = e.value;
    else if (e.valueFrom.secretKeyRef.optional !== true) env[e.name] = SECRET_STANDINS[e.name]!;
  }
  return env;
}

describe('infra/k8s', () => {
  test('every YAML parses; every manifest has apiVersion, kind, a DNS-1123 name and passes the Kubernetes/KEDA schema', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    for (const doc of manifests) {
      const { file, ...body } = doc;
      const id = `${file}: ${body.kind}/${body.metadata?.name}`;
      expect(body.metadata?.name, id).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      const Model = MODELS[`${body.apiVersion}/${body.kind}`];
      expect(Model, `${id}: no schema for ${body.apiVersion} ${body.kind}`).toBeDefined();
      expect(() => new Model!(body).validate(), id).not.toThrow();
    }
  });

  test('workloads: selectors match their template labels, containers request resources, probes use declared ports', () => {
    expect(workloads.map((w) => w.metadata.name).sort()).toEqual(['toolplane-planner', 'toolplane-postgres', 'toolplane-redis', 'toolplane-worker']);
    for (const w of workloads) {
      const id = `${w.kind}/${w.metadata.name}`;
      const labels = w.spec.template.metadata.labels;
      expect(labels, id).toMatchObject(w.spec.selector.matchLabels);
      // prometheus-kubernetes.yml keeps pods labeled part-of toolplane and names the service after the component.
      expect(labels['app.kubernetes.io/part-of'], id).toBe('toolplane');
      expect(labels['app.kubernetes.io/component'], id).toBeTruthy();
      for (const ctr of w.spec.template.spec.containers) {
        expect(ctr.resources?.requests, id).toMatchObject({ cpu: expect.anything(), memory: expect.anything() });
        for (const p of ctr.ports ?? []) expect(p.name.length, `${id} port ${p.name}`).toBeLessThanOrEqual(15);
        for (const probe of [ctr.readinessProbe, ctr.livenessProbe]) {
          expect(probe, id).toBeDefined();
          const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
          if (port !== undefined) expect(findPort(ctr, port), `${id} probe port ${port}`).toBeDefined();
        }
      }
    }
    for (const pdb of byKind('PodDisruptionBudget')) {
      expect(workloads.some((w) => Object.entries(pdb.spec.selector.matchLabels).every(([k, v]) => w.spec.template.metadata.labels[k] === v))).toBe(true);
    }
  });

  test('services select a workload and target ports its container declares; the StatefulSet has its headless service', () => {
    for (const svc of byKind('Service')) {
      const target = workloads.find((w) => Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
      expect(target, `Service/${svc.metadata.name}`).toBeDefined();
      for (const p of svc.spec.ports) expect(findPort(target!.spec.template.spec.containers[0], p.targetPort ?? p.port), `${svc.metadata.name}:${p.name}`).toBeDefined();
    }
    const redis = workload('toolplane-redis');
    expect(byKind('Service').find((s) => s.metadata.name === redis.spec.serviceName)?.spec.clusterIP).toBe('None');
  });

  test('planner and worker: only env vars their config schemas know, values that parse, node --no-node-snapshot', () => {
    for (const [name, schema, main] of [
      ['toolplane-planner', PlannerConfig, 'services/planner/src/main.ts'],
      ['toolplane-worker', WorkerConfig, 'services/worker/src/main.ts'],
    ] as const) {
      const ctr = container(name);
      const names = [...(ctr.env ?? []).map((e: any) => e.name), ...Object.keys(containerEnv(ctr))];
      expect(names.filter((n) => !(n in schema.shape)), name).toEqual([]);
      const parsed = schema.safeParse(containerEnv(ctr));
      expect(parsed.error?.issues ?? [], name).toEqual([]);
      // `args`, so the image's entrypoint (tini) stays PID 1 and hands SIGTERM to node.
      expect(ctr.command, name).toBeUndefined();
      expect(ctr.args.slice(0, 2), name).toEqual(['node', '--no-node-snapshot']);
      expect(ctr.args[2].replace('/dist/', '/src/').replace(/\.js$/, '.ts'), name).toBe(main);
      expect(ctr.image, name).toBe('toolplane');
    }
    const planner = container('toolplane-planner');
    expect(findPort(planner, Number(containerEnv(planner).PORT))?.name).toBe('http');
    expect(planner.readinessProbe.httpGet.path).toBe('/readyz');
    expect(planner.livenessProbe.httpGet.path).toBe('/healthz');
  });

  test('fail closed: the planner needs its admin key from the Secret, and nothing turns auth off', () => {
    const planner = container('toolplane-planner');
    const ref = planner.env.find((e: any) => e.name === 'TOOLPLANE_ADMIN_KEY')?.valueFrom?.secretKeyRef;
    expect(ref).toMatchObject({ name: 'toolplane-secrets', key: 'TOOLPLANE_ADMIN_KEY' });
    expect(ref.optional ?? false).toBe(false);
    for (const name of ['toolplane-planner', 'toolplane-worker']) expect(containerEnv(container(name)).TOOLPLANE_AUTH, name).toBeUndefined();
    // Without the key the planner's own config refuses to start, naming it.
    const { TOOLPLANE_ADMIN_KEY: _key, ...withoutKey } = containerEnv(planner);
    const parsed = PlannerConfig.safeParse(withoutKey);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toEqual(['TOOLPLANE_ADMIN_KEY']);
  });

  test('fail closed: /metrics of the planner and the workers needs the token from the Secret, and Prometheus sends it', () => {
    for (const name of ['toolplane-planner', 'toolplane-worker']) {
      const ref = container(name).env.find((e: any) => e.name === 'TOOLPLANE_METRICS_TOKEN')?.valueFrom?.secretKeyRef;
      expect(ref, name).toMatchObject({ name: 'toolplane-secrets', key: 'TOOLPLANE_METRICS_TOKEN' });
      expect(ref.optional ?? false, name).toBe(false);
    }
    const prometheus = parse(readFileSync(join(ROOT, 'infra/prometheus/prometheus-kubernetes.yml'), 'utf8')) as { scrape_configs: any[] };
    expect(prometheus.scrape_configs[0].authorization).toEqual({
      type: 'Bearer',
      credentials_file: '/etc/prometheus/secrets/toolplane-secrets/TOOLPLANE_METRICS_TOKEN',
    });
  });

  test('every container: non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      const id = `${w.kind}/${w.metadata.name}`;
      expect(pod.automountServiceAccountToken, id).toBe(false);
      expect(pod.securityContext?.seccompProfile?.type, id).toBe('RuntimeDefault');
      for (const ctr of [...(pod.initContainers ?? []), ...pod.containers]) {
        const sc = { ...pod.securityContext, ...ctr.securityContext };
        expect(sc.runAsNonRoot, `${id}/${ctr.name}`).toBe(true);
        expect(sc.runAsUser, `${id}/${ctr.name}`).toBeGreaterThan(0);
        expect(ctr.securityContext, `${id}/${ctr.name}`).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(ctr.securityContext.privileged ?? false, `${id}/${ctr.name}`).toBe(false);
        expect(ctr.securityContext.capabilities.add ?? [], `${id}/${ctr.name}`).toEqual([]);
      }
    }
    // The image's user; the one writable directory of the image (/app/.data) and /tmp are volumes.
    for (const name of ['toolplane-planner', 'toolplane-worker']) {
      expect(workload(name).spec.template.spec.securityContext.runAsUser, name).toBe(1000);
      expect(container(name).volumeMounts.map((m: any) => m.mountPath), name).toContain('/tmp');
    }
    expect(container('toolplane-planner').volumeMounts.map((m: any) => m.mountPath)).toContain('/app/.data');
  });

  test("the worker's memory limit holds its sandbox hosts at their budget, a spare and the worker itself", () => {
    const ctr = container('toolplane-worker');
    const env = containerEnv(ctr);
    const parsed = WorkerConfig.parse(env);
    const mib = (q: string) => Number(/^(\d+)(Mi|Gi)$/.exec(q)![1]) * (q.endsWith('Gi') ? 1024 : 1);
    // A host is replaced past its budget + 256 MB (packages/sandbox); one spare is started ahead.
    const sandboxMiB = (parsed.SANDBOX_HOSTS + 1) * (parsed.SANDBOX_MEMORY_BUDGET_MB + 256);
    expect(mib(ctr.resources.limits.memory)).toBeGreaterThanOrEqual(sandboxMiB + 256);
    expect(mib(ctr.resources.requests.memory)).toBeLessThanOrEqual(mib(ctr.resources.limits.memory));
    for (const name of ['toolplane-planner', 'toolplane-worker']) expect(container(name).resources.limits?.memory, name).toBeTruthy();
  });

  test('a PodDisruptionBudget keeps a planner and a worker through voluntary evictions', () => {
    for (const name of ['toolplane-planner', 'toolplane-worker']) {
      const pdb = byKind('PodDisruptionBudget').find((p) => p.spec.selector.matchLabels['app.kubernetes.io/name'] === name);
      expect(pdb?.spec.minAvailable, name).toBeGreaterThanOrEqual(1);
    }
  });

  test('NetworkPolicy: workers reach Redis, DNS and the internet; never a private range or the metadata address', () => {
    const policyFor = (name: string) => byKind('NetworkPolicy').find((p) => p.spec.podSelector.matchLabels['app.kubernetes.io/name'] === name);
    const redisLabels = workload('toolplane-redis').spec.template.metadata.labels;
    for (const name of ['toolplane-worker', 'toolplane-planner']) {
      const policy = policyFor(name);
      expect(policy?.spec.policyTypes, name).toEqual(expect.arrayContaining(['Ingress', 'Egress']));
      const rules = policy!.spec.egress as Array<{ to?: any[]; ports?: any[] }>;
      // No rule without peers: that would allow everything.
      for (const rule of rules) expect(rule.to?.length, name).toBeGreaterThan(0);
      const peers = rules.flatMap((r) => r.to!.map((peer: any) => ({ peer, ports: r.ports })));
      // Redis: a pod selector that matches the bundled Redis, on its port.
      expect(peers.some(({ peer, ports }) => peer.podSelector && !peer.namespaceSelector
        && Object.entries(peer.podSelector.matchLabels).every(([k, v]) => redisLabels[k] === v)
        && ports?.some((p: any) => p.port === 6379)), name).toBe(true);
      // Everything else that is not a pod selector is an IP block, judged address by address.
      const blocks = peers.filter(({ peer }) => peer.ipBlock).map(({ peer }) => peer.ipBlock as { cidr: string; except?: string[] });
      const allowed = (ip: string) => blocks.some((b) => inCidr(ip, b.cidr) && !(b.except ?? []).some((e) => inCidr(ip, e)));
      for (const ip of ['8.8.8.8', '1.1.1.1', '140.82.112.3', '2606:4700:4700::1111']) expect(allowed(ip), `${name} → ${ip}`).toBe(true);
      for (const ip of [
        '169.254.169.254', // cloud metadata (AWS, GCP, Azure)
        'fd00:ec2::254', // AWS metadata over IPv6
        '10.96.0.1', // a typical Service range
        '10.244.1.7', // a typical pod range
        '172.17.0.1',
        '192.168.49.2',
        '100.64.0.10', // CGNAT, used by some clusters for pods
        '127.0.0.1',
        '::1',
        'fe80::1',
        'fd12:3456::1',
      ]) {
        expect(allowed(ip), `${name} → ${ip}`).toBe(false);
      }
      for (const { peer } of peers) expect(peer.ipBlock || peer.podSelector || peer.namespaceSelector, name).toBeTruthy();
    }
    // Redis: only the planner and the workers get in; it reaches nothing.
    const redis = policyFor('toolplane-redis')!;
    expect(redis.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(redis.spec.egress).toEqual([]);
    const from = redis.spec.ingress.flatMap((r: any) => r.from.map((f: any) => f.podSelector.matchLabels['app.kubernetes.io/name'])).sort();
    expect(from).toEqual(['toolplane-planner', 'toolplane-worker']);
  });

  test('images are pinned: a tag other than latest, or a digest, in the base and every overlay', () => {
    const pinned = (image: string) => /@sha256:[0-9a-f]{64}$/.test(image) || /:[\w][\w.-]*$/.test(image.split('/').at(-1)!) && !image.endsWith(':latest');
    for (const overlay of OVERLAYS) {
      const out = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], { encoding: 'utf8' });
      const images = parseAllDocuments(out)
        .map((d) => d.toJS() as Doc)
        .filter((d) => d.spec?.template?.spec)
        .flatMap((d) => d.spec.template.spec.containers.map((c: any) => c.image as string));
      expect(images.length, overlay).toBeGreaterThan(0);
      for (const image of images) expect(pinned(image), `${overlay}: ${image}`).toBe(true);
    }
    const base = parseFile(join(K8S, 'base/kustomization.yaml'))[0]!;
    for (const img of base.images) expect(img.digest ?? img.newTag, img.name).not.toMatch(/^(latest)?$/);
  });

  test('liveness on /healthz restarts a planner or worker blocked for more than a few seconds; readiness on /readyz', () => {
    for (const name of ['toolplane-planner', 'toolplane-worker']) {
      const ctr = container(name);
      const { livenessProbe: live, readinessProbe: ready, startupProbe: startup } = ctr;
      expect(live.httpGet.path, name).toBe('/healthz');
      expect(ready.httpGet.path, name).toBe('/readyz');
      // A blocked event loop answers nothing: a short timeout turns that into a failure at once.
      expect(live.timeoutSeconds, name).toBeLessThanOrEqual(2);
      const restartAfterS = live.periodSeconds * live.failureThreshold;
      expect(restartAfterS, name).toBeLessThanOrEqual(10);
      // /healthz stays unhealthy for 2 s after a lag (createLagMonitor): one stall must not restart.
      expect(restartAfterS, name).toBeGreaterThan(2 + live.timeoutSeconds);
      // A slow start (waiting for Redis) is the startup probe's, not liveness's.
      expect(startup?.httpGet.path, name).toBe('/healthz');
      expect(startup.periodSeconds * startup.failureThreshold, name).toBeGreaterThanOrEqual(30);
    }
  });

  test('workers: metrics port annotated for Prometheus pod discovery, grace period longer than the longest tool run', () => {
    for (const name of ['toolplane-planner', 'toolplane-worker']) {
      const pod = workload(name).spec.template;
      const ctr = pod.spec.containers[0];
      expect(pod.metadata.annotations['prometheus.io/scrape'], name).toBe('true');
      expect(pod.metadata.annotations['prometheus.io/path'], name).toBe('/metrics');
      expect(findPort(ctr, Number(pod.metadata.annotations['prometheus.io/port'])), name).toBeDefined();
    }
    const worker = workload('toolplane-worker').spec.template;
    const env = containerEnv(worker.spec.containers[0]);
    expect(findPort(worker.spec.containers[0], Number(env.WORKER_METRICS_PORT))?.name).toBe('metrics');
    // The longest run a tool may ask for, read off the schema rather than copied.
    expect(ToolLimits.safeParse({ timeoutMs: 300_000 }).success).toBe(true);
    expect(ToolLimits.safeParse({ timeoutMs: 300_001 }).success).toBe(false);
    const shutdownMs = Number(env.SHUTDOWN_TIMEOUT_MS);
    expect(shutdownMs).toBeGreaterThan(300_000);
    expect(worker.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(shutdownMs);
  });

  test('the bundled Redis keeps an append-only file and never evicts', () => {
    const conf = byKind('ConfigMap').find((c) => c.metadata.name === 'toolplane-redis')!.data['redis.conf'] as string;
    expect(conf).toMatch(/^appendonly yes$/m);
    expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
    const redis = container('toolplane-redis');
    expect(redis.volumeMounts.map((m: any) => m.mountPath)).toContain('/data');
    expect(conf).toMatch(/^dir \/data$/m);
  });

  test('KEDA scales the worker Deployment on a PromQL query over metrics Toolplane exports, and the query parses', async () => {
    const [so] = byKind('ScaledObject');
    expect(so!.spec.scaleTargetRef.name).toBe('toolplane-worker');
    expect(so!.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(so!.spec.maxReplicaCount).toBeGreaterThan(so!.spec.minReplicaCount);
    const [trigger] = so!.spec.triggers;
    expect(trigger.type).toBe('prometheus');
    expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
    const query = trigger.metadata.query as string;
    const exported = [...readFileSync(join(ROOT, 'packages/metrics/src/metrics.ts'), 'utf8').matchAll(/name: '(toolplane_[a-z_]+)'/g)].map((m) => m[1]);
    const used = [...query.matchAll(/\b(toolplane_[a-z_]+)\b/g)].map((m) => m[1]);
    expect(used).toContain('toolplane_queue_runnable');
    expect(used.filter((m) => !exported.includes(m))).toEqual([]);
    // The `service` label is the pod's component label (prometheus-kubernetes.yml relabels it so).
    const service = /service="([^"]+)"/.exec(query)?.[1];
    if (service) expect(workloads.map((w) => w.spec.template.metadata.labels['app.kubernetes.io/component'])).toContain(service);
    const dir = mkdtempSync(join(tmpdir(), 'toolplane-keda-'));
    try {
      writeFileSync(join(dir, 'rules.yml'), stringify({ groups: [{ name: 'keda', rules: [{ record: 'toolplane:keda_trigger', expr: query }] }] }));
      const res = await promtool(['check', 'rules', join(dir, 'rules.yml')]);
      expect(res, res.output).toMatchObject({ code: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('kustomizations: every listed file exists, images and patches name what the base has', () => {
    const containerImages = workloads.flatMap((w) => w.spec.template.spec.containers.map((c: any) => c.image));
    for (const k of kustomizations) {
      const kust = parseFile(k)[0]!;
      const id = relative(K8S, k);
      expect(kust.apiVersion, id).toBe('kustomize.config.k8s.io/v1beta1');
      expect(kust.kind, id).toBe('Kustomization');
      for (const r of kust.resources ?? []) expect(existsSync(join(dirname(k), r)), `${id}: ${r}`).toBe(true);
      for (const img of kust.images ?? []) expect(containerImages, `${id}: image ${img.name}`).toContain(img.name);
      for (const p of (kust.patches ?? []) as Array<{ path: string; target?: { kind: string; name: string } }>) {
        // A JSON patch names its target in the kustomization; a strategic merge patch in itself.
        const targets = p.target ? [p.target] : parseFile(join(dirname(k), p.path)).map((d) => ({ kind: d.kind, name: d.metadata.name }));
        for (const t of targets) {
          expect(manifests.some((m) => m.kind === t.kind && m.metadata.name === t.name), `${id}: patch ${p.path}`).toBe(true);
        }
      }
    }
    expect(kustomizations.map((k) => relative(K8S, k)).sort()).toEqual([
      'base/kustomization.yaml',
      'overlays/local/kustomization.yaml',
      'overlays/postgres/kustomization.yaml',
      'overlays/redis-cluster/kustomization.yaml',
      'postgres/kustomization.yaml',
      'redis/kustomization.yaml',
    ]);
  });

  // The overlays are rendered for real with kubectl's built-in kustomize (scripts/bootstrap.sh makes
  // sure there is one) and the result checked against the schemas too.
  test('kubectl kustomize renders each overlay into valid manifests in one namespace', () => {
    for (const overlay of OVERLAYS) {
      const out = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], { encoding: 'utf8' });
      const docs = parseAllDocuments(out).map((d) => d.toJS() as Doc);
      for (const doc of docs) {
        expect(() => new MODELS[`${doc.apiVersion}/${doc.kind}`]!(doc).validate(), `${overlay}: ${doc.kind}/${doc.metadata.name}`).not.toThrow();
        if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, `${overlay}: ${doc.kind}/${doc.metadata.name}`).toBe('toolplane');
      }
      const config = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'toolplane-config')!;
      const hasRedis = docs.some((d) => d.kind === 'StatefulSet' && d.metadata.name === 'toolplane-redis');
      expect(config.data.REDIS_URL.startsWith('redis-cluster://'), overlay).toBe(!hasRedis);
      expect(WorkerConfig.safeParse(config.data).success, overlay).toBe(true);
    }
  });

  test('overlays/postgres: the planner takes HISTORY_URL from the Secret and alone reaches the bundled Postgres', () => {
    const out = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays/postgres')], { encoding: 'utf8' });
    const docs = parseAllDocuments(out).map((d) => d.toJS() as Doc);
    const named = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!;
    const planner = named('Deployment', 'toolplane-planner').spec.template.spec.containers[0];
    const ref = planner.env.find((e: any) => e.name === 'HISTORY_URL')?.valueFrom?.secretKeyRef;
    expect(ref).toMatchObject({ name: 'toolplane-secrets', key: 'HISTORY_URL' });
    expect(ref.optional ?? false).toBe(false);
    const url = 'postgres://toolplane:pw@toolplane-postgres:5432/toolplane';
    expect(PlannerConfig.safeParse({ ...containerEnv(container('toolplane-planner')), HISTORY_URL: url }).error?.issues ?? []).toEqual([]);
    const pg = named('StatefulSet', 'toolplane-postgres');
    const pgLabels = pg.spec.template.metadata.labels;
    const reaches = (policy: string) =>
      (named('NetworkPolicy', policy).spec.egress as Array<{ to: any[]; ports?: any[] }>).some((r) => r.ports?.some((p) => p.port === 5432)
        && r.to.some((peer) => peer.podSelector && Object.entries(peer.podSelector.matchLabels).every(([k, v]) => pgLabels[k] === v)));
    expect(reaches('toolplane-planner')).toBe(true);
    expect(reaches('toolplane-worker')).toBe(false);
    const pgPolicy = named('NetworkPolicy', 'toolplane-postgres');
    expect(pgPolicy.spec.egress).toEqual([]);
    expect(pgPolicy.spec.ingress.flatMap((r: any) => r.from.map((f: any) => f.podSelector.matchLabels['app.kubernetes.io/name']))).toEqual(['toolplane-planner']);
    expect(named('Service', 'toolplane-postgres').spec.clusterIP).toBe('None');
  });
});
