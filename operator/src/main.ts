import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller } from './controller.js';
import { Kube } from './kube/client.js';
import { jsonLogger, type Level } from './log.js';
import { OperatorMetrics } from './metrics.js';
import { FileCertificates, SecretCertificates } from './webhook/certificates.js';
import { type RunningWebhook, startWebhook } from './webhook/run.js';

export const USAGE = `usage: tarn-operator [--kubeconfig <file>] [--namespace <ns>] [--image <sidecar image>]
                     [--workers <n>] [--health-port <port>] [--log-level debug|info|warn|error]
                     [--webhook-port <port> [webhook options]]

Reconciles TarnStorage resources (tarn.dev/v1alpha1) into sidecar ConfigMaps and injects the sidecar
into the Deployments, StatefulSets and DaemonSets labelled tarn.dev/storage=<name>. In a pod it uses
its service account; elsewhere --kubeconfig, else $KUBECONFIG, else ~/.kube/config. --image (or
$TARN_SIDECAR_IMAGE) is the sidecar image of storages that name none. GET /healthz, /readyz and
/metrics (Prometheus) on --health-port (default 8081; 0: none). Stops on SIGTERM.

With --webhook-port it also serves the admission webhook that gives labelled Pods (a Job's, a bare
Pod) the sidecar at creation, over HTTPS on that port (POST /mutate-pods):
  --webhook-service <name>      the webhook's Service: the certificate is for <name>.<ns>.svc
  --webhook-namespace <ns>      its namespace and the certificate Secret's (default $POD_NAMESPACE)
  --webhook-host <name|ip>      another name or address of the certificate (repeatable)
  --webhook-address <ip>        where to listen (default: every address)
  --webhook-secret <name>       the Secret the operator keeps its CA and certificate in
                                (default tarn-webhook-cert)
  --webhook-config <name>       the MutatingWebhookConfiguration whose caBundle it keeps current
  --webhook-cert-dir <dir>      serve tls.crt/tls.key from here instead (cert-manager), re-read
                                at every sync; the operator then makes no CA and sets no caBundle
  --webhook-ca-validity <d>     of the CA it makes (default 365d); renewed in its last third
  --webhook-cert-validity <d>   of the serving certificate (default 30d); renewed in its last third
  --webhook-overlap <d>         a new CA is trusted this long before it signs what is served, and an
                                old one stays trusted this long after (default 2m)
  --webhook-sync-interval <d>   how often the certificates are looked at (default 10s, at most 1h;
                                the overlap is at least twice as long)
  --webhook-timeout <d>         the webhook configuration's timeoutSeconds (default 5s): a storage
                                is read within 60% of it, so a slow read is a clear refusal
Durations are a number and ms, s, m, h or d.`;

/** `90s`, `2m`, `30d`: milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
  const ms = Number(m[1]) * unit;
  return ms > 0 ? ms : undefined;
}

export interface OperatorIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  signal: AbortSignal;
}

/** The operator's process: flags, kubeconfig, health server, the controller; resolves with the exit status. */
export async function operatorMain(argv: string[], io: OperatorIo): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        image: { type: 'string' },
        workers: { type: 'string' },
        'health-port': { type: 'string' },
        'log-level': { type: 'string' },
        'webhook-port': { type: 'string' },
        'webhook-service': { type: 'string' },
        'webhook-namespace': { type: 'string' },
        'webhook-host': { type: 'string', multiple: true },
        'webhook-address': { type: 'string' },
        'webhook-secret': { type: 'string' },
        'webhook-config': { type: 'string' },
        'webhook-cert-dir': { type: 'string' },
        'webhook-ca-validity': { type: 'string' },
        'webhook-cert-validity': { type: 'string' },
        'webhook-overlap': { type: 'string' },
        'webhook-sync-interval': { type: 'string' },
        'webhook-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    io.stderr.write(`tarn-operator: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const level = (values['log-level'] ?? 'info') as Level;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    io.stderr.write(`tarn-operator: --log-level ${level}: one of debug, info, warn, error\n`);
    return 2;
  }
  const workers = Number(values.workers ?? 2);
  const healthPort = Number(values['health-port'] ?? 8081);
  if (
    !Number.isInteger(workers) ||
    workers < 1 ||
    !Number.isInteger(healthPort) ||
    healthPort < 0 ||
    healthPort > 65535
  ) {
    io.stderr.write('tarn-operator: --workers is a positive integer, --health-port a TCP port\n');
    return 2;
  }
  const image = (values.image as string | undefined) ?? io.env.TARN_SIDECAR_IMAGE;
  if (!image) {
    io.stderr.write('tarn-operator: give the sidecar image: --image or $TARN_SIDECAR_IMAGE\n');
    return 2;
  }
  const webhook = webhookOptions(values, io.env);
  if (typeof webhook === 'string') {
    io.stderr.write(`tarn-operator: ${webhook}\n`);
    return 2;
  }
  const log = jsonLogger(level, io.stdout);
  const config = new KubeConfig();
  try {
    if (values.kubeconfig) config.loadFromFile(values.kubeconfig as string);
    else config.loadFromDefault();
  } catch (e) {
    io.stderr.write(`tarn-operator: cannot load the kubeconfig: ${(e as Error).message}\n`);
    return 1;
  }
  const kube = await Kube.from(config);
  let serving: RunningWebhook | undefined;
  const certificates = !webhook
    ? undefined
    : webhook.certDir
      ? new FileCertificates(webhook.certDir)
      : new SecretCertificates({
          kube,
          log,
          namespace: webhook.namespace,
          secret: webhook.secret,
          ...(webhook.config ? { webhookConfig: webhook.config } : {}),
          hosts: webhook.hosts,
          caValidityMs: webhook.caValidityMs,
          certValidityMs: webhook.certValidityMs,
          overlapMs: webhook.overlapMs,
        });
  const metrics = new OperatorMetrics({
    // Read at scrape time, after the controller below exists.
    queueLength: (): number => controller.queue.length,
    ...(webhook ? { servedCertificate: () => serving?.server.certificate } : {}),
    ...(certificates instanceof SecretCertificates ? { rotation: () => certificates.stats } : {}),
  });
  const controller: Controller = new Controller({
    kube,
    image,
    log,
    workers,
    observer: metrics,
    ...(values.namespace ? { namespace: values.namespace as string } : {}),
  });
  const stop = new AbortController();
  io.signal.addEventListener('abort', () => stop.abort(), { once: true });
  let failed = false;
  const webhookStarted =
    webhook &&
    certificates &&
    startWebhook(
      {
        kube,
        log,
        image,
        port: webhook.port,
        ...(webhook.address ? { address: webhook.address } : {}),
        syncIntervalMs: webhook.syncIntervalMs,
        storageTimeoutMs: webhook.storageTimeoutMs,
        observer: metrics,
        certificates,
      },
      stop.signal,
    ).then(
      (w) => {
        serving = w;
      },
      (e: unknown) => {
        if (stop.signal.aborted) return;
        // Alive but never Ready would be worse: the pod restarts, and its events say why.
        log.error('the webhook could not start; stopping', { error: (e as Error).message });
        failed = true;
        stop.abort();
      },
    );
  let health: Server | undefined;
  if (healthPort > 0) {
    health = createServer((req, res) => {
      if (req.url === '/metrics') {
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
        return;
      }
      const ready = controller.synced && (!webhook || serving !== undefined);
      const ok = req.url === '/healthz' || (req.url === '/readyz' && ready);
      res.writeHead(ok ? 200 : req.url === '/readyz' ? 503 : 404, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    });
    await new Promise<void>((resolve) => health?.listen(healthPort, resolve));
  }
  log.info('tarn-operator starting', { server: kube.server, image });
  await controller.run(stop.signal);
  await webhookStarted;
  await serving?.done;
  health?.close();
  await kube.close();
  log.info('tarn-operator stopped');
  return failed ? 1 : 0;
}

interface WebhookFlags {
  port: number;
  address?: string;
  namespace: string;
  hosts: string[];
  secret: string;
  config?: string;
  certDir?: string;
  caValidityMs: number;
  certValidityMs: number;
  overlapMs: number;
  syncIntervalMs: number;
  storageTimeoutMs: number;
}

/** The webhook's flags, checked: undefined without --webhook-port, a message when they do not fit. */
function webhookOptions(
  values: Record<string, string | boolean | string[] | undefined>,
  env: NodeJS.ProcessEnv,
): WebhookFlags | string | undefined {
  const text = (k: string) => values[k] as string | undefined;
  if (text('webhook-port') === undefined) {
    const stray = Object.keys(values).find((k) => k.startsWith('webhook-') && values[k] !== undefined);
    return stray ? `--${stray} needs --webhook-port` : undefined;
  }
  const port = Number(text('webhook-port'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) return '--webhook-port is a TCP port';
  const durations: Record<string, number> = {};
  for (const [flag, fallback] of [
    ['webhook-ca-validity', '365d'],
    ['webhook-cert-validity', '30d'],
    ['webhook-overlap', '2m'],
    ['webhook-sync-interval', '10s'],
    ['webhook-timeout', '5s'],
  ] as const) {
    const ms = parseDuration(text(flag) ?? fallback);
    if (ms === undefined) return `--${flag} ${text(flag)}: a duration is a number and ms, s, m, h or d`;
    durations[flag] = ms;
  }
  const sync = durations['webhook-sync-interval'] as number;
  // A timer over 2^31 ms fires at once: a long interval would be a loop.
  if (sync > 3_600_000) return '--webhook-sync-interval is at most 1h';
  if ((durations['webhook-overlap'] as number) < 2 * sync)
    return '--webhook-overlap is at least twice --webhook-sync-interval (every replica syncs within it)';
  if ((durations['webhook-timeout'] as number) > 30_000)
    return '--webhook-timeout is at most 30s, as the API server allows';
  const namespace = text('webhook-namespace') ?? env.POD_NAMESPACE ?? '';
  const service = text('webhook-service');
  const hosts = [
    ...(service ? [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`] : []),
    ...((values['webhook-host'] as string[] | undefined) ?? []),
  ];
  const certDir = text('webhook-cert-dir');
  if (!certDir) {
    if (!namespace) return 'the webhook needs its namespace: --webhook-namespace or $POD_NAMESPACE';
    if (hosts.length === 0)
      return 'the webhook certificate needs a name: --webhook-service or --webhook-host';
    if ((durations['webhook-cert-validity'] as number) > (durations['webhook-ca-validity'] as number))
      return '--webhook-cert-validity is longer than --webhook-ca-validity';
  }
  return {
    port,
    ...(text('webhook-address') ? { address: text('webhook-address') as string } : {}),
    namespace,
    hosts,
    secret: text('webhook-secret') ?? 'tarn-webhook-cert',
    ...(text('webhook-config') ? { config: text('webhook-config') as string } : {}),
    ...(certDir ? { certDir } : {}),
    caValidityMs: durations['webhook-ca-validity'] as number,
    certValidityMs: durations['webhook-cert-validity'] as number,
    overlapMs: durations['webhook-overlap'] as number,
    syncIntervalMs: sync,
    storageTimeoutMs: Math.round((durations['webhook-timeout'] as number) * 0.6),
  };
}
