// Entry point of the datapath worker thread: owns one Datapath (datapath.ts) and runs every libbpf
// call (open, load and verify, attach, map reads) off the main event loop, one request at a time,
// answering over the protocol in protocol.ts. BPF fds and mounts are process-wide, so pins and
// links made here are the daemon's; koffi loads libbpf afresh in this thread.
import { parentPort } from 'node:worker_threads';
import { Datapath, type DatapathLog } from './datapath.js';
import { type DatapathOps, type DatapathRequest, type LogLevel, type WorkerMessage, toWireError, toWireLogFields } from './protocol.js';
import { ServiceMapWriter } from './services.js';
import { serveSock } from './sock.js';
import { PolicyEventsServer } from './host.js';

const port = parentPort;
if (!port) throw new Error('datapath/worker.js runs as a worker thread only');

function post(m: WorkerMessage): void {
  port!.postMessage(m);
}

const forward = (level: LogLevel) => (obj: object, msg?: string): void =>
  post({ type: 'log', level, obj: toWireLogFields(obj), ...(msg !== undefined ? { msg } : {}) });
const log: DatapathLog = { debug: forward('debug'), info: forward('info'), warn: forward('warn'), error: forward('error') };
const datapath = new Datapath(log);

// The service maps are pinned by the endpoint datapath; one writer per pin path, opened lazily.
const writers = new Map<string, ServiceMapWriter>();
function serviceMaps(pinPath: string): ServiceMapWriter {
  let w = writers.get(pinPath);
  if (!w) writers.set(pinPath, (w = new ServiceMapWriter(pinPath)));
  return w;
}

// Policy writes and the flow-event pump; event batches are posted as they are drained.
const policyEvents = new PolicyEventsServer((batch) => post({ type: 'events', batch }));

function serve(req: DatapathRequest): DatapathOps[DatapathRequest['op']]['result'] {
  switch (req.op) {
    case 'start':
      return datapath.start(req.args);
    case 'reconcile':
      return datapath.reconcile(req.args ?? undefined);
    case 'status':
      return datapath.status();
    case 'stats':
      return datapath.stats();
    case 'natGc':
      return datapath.natGc();
    case 'servicesApply':
      return serviceMaps(req.args.pinPath).apply(req.args.ops);
    case 'ctList':
      return serviceMaps(req.args.pinPath).ctList(process.hrtime.bigint());
    case 'ctFlush':
      return serviceMaps(req.args.pinPath).ctFlush(req.args.serviceId);
    case 'ctGc':
      return serviceMaps(req.args.pinPath).ctGc(process.hrtime.bigint());
    case 'sock':
      return serveSock(req.args);
    case 'policyApply':
    case 'eventsStart':
    case 'eventsStop':
    case 'eventStats':
      return policyEvents.serve(req.op, req.args);
    case 'stop':
      policyEvents.events.stop();
      datapath.stop(req.args);
      return null;
  }
}

port.on('message', (req: DatapathRequest) => {
  try {
    post({ type: 'reply', id: req.id, ok: true, result: serve(req) });
  } catch (e) {
    post({ type: 'reply', id: req.id, ok: false, error: toWireError(e) });
  }
});
