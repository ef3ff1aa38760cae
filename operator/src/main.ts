import { createServer, type Server } from 'node:http';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller } from './controller.js';
import { Kube } from './kube/client.js';
import { jsonLogger, type Level } from './log.js';

export const USAGE = `usage: tarn-operator [--kubeconfig <file>] [--namespace <ns>] [--image <sidecar image>]
                     [--workers <n>] [--health-port <port>] [--log-level debug|info|warn|error]

Reconciles TarnStorage resources (tarn.dev/v1alpha1) into sidecar ConfigMaps and injects the sidecar
into the Deployments, StatefulSets and DaemonSets labelled tarn.dev/storage=<name>. In a pod it uses
its service account; elsewhere --kubeconfig, else $KUBECONFIG, else ~/.kube/config. --image (or
$TARN_SIDECAR_IMAGE) is the sidecar image of storages that name none. GET /healthz and /readyz on
--health-port (default 8081; 0: none). Stops on SIGTERM.`;

export interface OperatorIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  signal: AbortSignal;
}

/** The operator's process: flags, kubeconfig, health server, the controller; resolves with the exit status. */
export async function operatorMain(argv: string[], io: OperatorIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
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
  const controller = new Controller({
    kube,
    image,
    log,
    workers,
    ...(values.namespace ? { namespace: values.namespace as string } : {}),
  });
  let health: Server | undefined;
  if (healthPort > 0) {
    health = createServer((req, res) => {
      const ok = req.url === '/healthz' || (req.url === '/readyz' && controller.synced);
      res.writeHead(ok ? 200 : req.url === '/readyz' ? 503 : 404, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    });
    await new Promise<void>((resolve) => health?.listen(healthPort, resolve));
  }
  log.info('tarn-operator starting', { server: kube.server, image });
  await controller.run(io.signal);
  health?.close();
  await kube.close();
  log.info('tarn-operator stopped');
  return 0;
}
