// Generic conformance Worker: runs every scenario of scenarios.json (see ../DSL.md) at once.
// Real queue names are "<scenario>-<short>"; bindings are Q_<SCENARIO>_<SHORT> (upper snake).
import SCENARIOS from "./scenarios.json";

const BY_NAME = Object.fromEntries(SCENARIOS.map((s) => [s.name, s]));
const LOG = [];          // deliveries, tagged with their scenario
const COUNTERS = {};     // "<scenario>/<short>" -> batches delivered so far
let t0 = Date.now();

const binding = (scenario, short) => `Q_${scenario}_${short}`.replace(/-/g, "_").toUpperCase();
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
// A delay in scenarios.json is a number or a string naming one ("NaN", "Infinity", "1.9")
const jsNumber = (value) => (typeof value === "string" ? Number(value) : value);

function locate(queueName) {
  for (const s of SCENARIOS) {
    const prefix = `${s.name}-`;
    if (queueName.startsWith(prefix) && queueName.slice(prefix.length) in s.queues) {
      return [s, queueName.slice(prefix.length)];
    }
  }
  throw new Error(`unknown queue ${queueName}`);
}

function actionFor(body, attempts) {
  const plan = body.do || [];
  if (plan.length === 0) return "none";
  return plan[Math.min(attempts, plan.length) - 1];
}

async function runCall(call, message, env, scenario) {
  const [name, arg] = call.trim().split(/:(.*)/s);
  if (name === "none") return;
  if (name === "ack") message.ack();
  else if (name === "retry") arg ? message.retry({ delaySeconds: Number(arg) }) : message.retry();
  else if (name === "send") {
    const [queue, delay] = arg.split(/:(.*)/s);
    const options = { contentType: "json" };
    if (delay) options.delaySeconds = Number(delay);
    await env[binding(scenario.name, queue)].send({ k: `${message.body.k}>${queue}`, do: [] }, options);
  }
  else if (name === "sleep") await sleep(Number(arg));
  else if (name === "throw") throw new Error("message action throws");
  else throw new Error(`unknown message action ${call}`);
}

async function doSend(scenario, send, env) {
  const producer = env[binding(scenario.name, send.queue)];
  const strip = ({ delay, ...body }) => body;
  if ((send.mode || "send") === "send") {
    for (const item of send.messages) {
      const delay = item.delay ?? send.delay;
      const options = { contentType: "json" };
      if (delay !== undefined && delay !== null) options.delaySeconds = jsNumber(delay);
      await producer.send(strip(item), options);
    }
  } else {
    const messages = send.messages.map((item) => {
      const m = { body: strip(item), contentType: "json" };
      if (item.delay !== undefined && item.delay !== null) m.delaySeconds = jsNumber(item.delay);
      return m;
    });
    const options = {};
    if (send.delay !== undefined && send.delay !== null) options.delaySeconds = jsNumber(send.delay);
    await producer.sendBatch(messages, options);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/start") {
      t0 = Date.now();
      LOG.length = 0;
      for (const key of Object.keys(COUNTERS)) delete COUNTERS[key];
      return Response.json({ t0 });
    }
    if (url.pathname === "/send") {
      const { scenario, index } = await request.json();
      const s = BY_NAME[scenario];
      const at = (Date.now() - t0) / 1000;     // when the send really began (the runner's clock lags)
      await doSend(s, s.sends[index], env);
      return Response.json({ ok: true, at, t: (Date.now() - t0) / 1000 });
    }
    if (url.pathname === "/log") return Response.json(LOG);
    return new Response("cdpkit conformance worker");
  },

  async queue(batch, env) {
    const [scenario, short] = locate(batch.queue);
    // an outage [from, to): every invocation throws before the handler's code runs (a bad
    // deploy), as cdpkit's fault timeline wraps the consumer; it is not logged as a delivery
    const outage = (scenario.outages || {})[short];
    const now = (Date.now() - t0) / 1000;
    if (outage && outage[0] <= now && now < outage[1]) throw new Error("outage");
    const key = `${scenario.name}/${short}`;
    const n = COUNTERS[key] ?? 0;
    COUNTERS[key] = n + 1;
    LOG.push({
      scenario: scenario.name, queue: short, t: (Date.now() - t0) / 1000, batch: n,
      messages: batch.messages.map((m) => ({ k: m.body.k, attempts: m.attempts })),
    });
    const plan = (scenario.batches || {})[short] || {};
    const steps = plan[String(n)] ?? plan.default ?? ["messages"];
    for (const step of steps) {
      const [name, arg] = step.split(/:(.*)/s);
      if (name === "messages") {
        for (const message of batch.messages) {
          for (const call of actionFor(message.body, message.attempts).split(",")) {
            await runCall(call, message, env, scenario);
          }
        }
      } else if (name === "ackAll") batch.ackAll();
      else if (name === "retryAll") arg ? batch.retryAll({ delaySeconds: Number(arg) }) : batch.retryAll();
      else if (name === "throw") throw new Error("scenario throws");
      else if (name === "sleep") await sleep(Number(arg));
      else throw new Error(`unknown batch step ${step}`);
    }
  },
};
