// Durable Object / KV / D1 conformance routes. Each route has a twin in
// test_actors_conformance.py written against cdpkit; both return the same observations.
import { DurableObject } from "cloudflare:workers";

let t0 = Date.now();
const now = () => (Date.now() - t0) / 1000;
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
const LOG = [];   // consumer observations

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.memory = 0;
  }
  async add(n) {
    this.memory += n;
    const total = ((await this.ctx.storage.get("total")) ?? 0) + n;
    await this.ctx.storage.put("total", total);
    return { memory: this.memory, total };
  }
  async viaIo(who) {            // awaits a timer: other requests may interleave
    await this.mark(`${who}:start`);
    await sleep(0.2);
    await this.mark(`${who}:end`);
  }
  async viaStorage(who) {       // awaits storage only: the input gate stays closed
    await this.mark(`${who}:start`);
    await this.ctx.storage.put(`k-${who}`, who);
    await this.ctx.storage.get(`k-${who}`);
    await this.mark(`${who}:end`);
  }
  async order() {
    return (await this.ctx.storage.get("log")) ?? [];
  }
  async mark(who) {             // appends at call time, no await between read and write
    const log = (await this.ctx.storage.get("log")) ?? [];
    log.push(who);
    await this.ctx.storage.put("log", log);
  }
  async crash() {
    this.ctx.abort("reset");
  }
  async sql(n) {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS hits(n INTEGER)");
    this.ctx.storage.sql.exec("INSERT INTO hits VALUES (?)", n);
    return this.ctx.storage.sql.exec("SELECT count(*) AS c, sum(n) AS s FROM hits").one();
  }
}

export class Alarms extends DurableObject {
  async arm(delay, failures) {
    await this.ctx.storage.put("failures", failures);
    await this.ctx.storage.put("fired", []);
    await this.ctx.storage.setAlarm(Date.now() + delay * 1000);
  }
  async alarm(info) {
    const fired = (await this.ctx.storage.get("fired")) ?? [];
    fired.push({ t: now(), retry: info?.retryCount ?? 0 });
    await this.ctx.storage.put("fired", fired);
    const left = await this.ctx.storage.get("failures");
    if (left > 0) {
      await this.ctx.storage.put("failures", left - 1);
      throw new Error("alarm failed");
    }
  }
  async fired() {
    return (await this.ctx.storage.get("fired")) ?? [];
  }
}

const counter = (env, name) => env.COUNTER.get(env.COUNTER.idFromName(name));

const ROUTES = {
  // a1: a queue consumer calls one object per message key
  "a1-send": async (env) => {
    for (const [k, n] of [["x", 1], ["y", 10], ["x", 2], ["x", 3], ["y", 20]]) {
      await env.JOBS.send({ k, n }, { contentType: "json" });
    }
    return "sent";
  },
  "a1-observe": async () => LOG.filter((e) => e.route === "a1"),
  // a2: concurrent callers interleave at timers, not at storage
  "a2-io": async (env) => {
    const s = counter(env, "a2-io");
    await Promise.all(["A", "B", "C"].map((w) => s.viaIo(w)));
    return await s.order();
  },
  "a2-storage": async (env) => {
    const s = counter(env, "a2-storage");
    await Promise.all(["A", "B", "C"].map((w) => s.viaStorage(w)));
    return await s.order();
  },
  // a3: callers are served in arrival order
  "a3-order": async (env) => {
    const s = counter(env, "a3");
    await Promise.all(["1", "2", "3", "4", "5"].map((w) => s.mark(w)));
    return await s.order();
  },
  // a4: storage survives ctx.abort(), in-memory state does not
  "a4-abort": async (env) => {
    const s = counter(env, "a4");
    const out = [await s.add(1), await s.add(2)];
    try { await s.crash(); out.push("no error"); } catch (e) { out.push("aborted"); }
    out.push(await counter(env, "a4").add(3));
    return out;
  },
  // a5: ids
  "a5-ids": async (env) => {
    const a = env.COUNTER.idFromName("w1"), b = env.COUNTER.idFromName("w1");
    const c = env.COUNTER.idFromName("w2"), u = env.COUNTER.newUniqueId();
    const back = env.COUNTER.idFromString(a.toString());
    let bad = "accepted";
    try { env.COUNTER.idFromString("xyz"); } catch (e) { bad = "rejected"; }
    return [a.equals(b), a.toString() === b.toString(), a.equals(c), a.toString().length,
            u.toString().length, back.equals(a), bad];
  },
  // a6: alarms fire at their time; a failing alarm is retried
  "a6-arm": async (env) => {
    await env.ALARMS.get(env.ALARMS.idFromName("ok")).arm(1, 0);
    await env.ALARMS.get(env.ALARMS.idFromName("flaky")).arm(1, 2);
    return "armed";
  },
  "a6-observe": async (env) => [
    await env.ALARMS.get(env.ALARMS.idFromName("ok")).fired(),
    await env.ALARMS.get(env.ALARMS.idFromName("flaky")).fired(),
  ],
  // a7: KV expiry (minimum TTL 60 s) and the TTL floor
  "a7-put": async (env) => {
    await env.CACHE.put("short", "v", { expirationTtl: 60 });
    await env.CACHE.put("long", "w", { expirationTtl: 3600 });
    let floor = "accepted";
    try { await env.CACHE.put("tiny", "x", { expirationTtl: 30 }); } catch (e) { floor = "rejected"; }
    return [floor, await env.CACHE.get("short"), await env.CACHE.get("long")];
  },
  "a7-get": async (env) => [await env.CACHE.get("short"), await env.CACHE.get("long")],
  // a8: a DLQ consumer writes dead letters to D1
  "a8-send": async (env) => {
    await env.DB.exec("CREATE TABLE IF NOT EXISTS dead (k TEXT, attempts INTEGER)");
    for (const k of ["p1", "p2", "p3"]) await env.FAILING.send({ k }, { contentType: "json" });
    return "sent";
  },
  "a8-rows": async (env) => (await env.DB.prepare("SELECT k, attempts FROM dead ORDER BY k").all()).results,
  // a9: SQL storage in a SQLite-backed object
  "a9-sql": async (env) => {
    const s = counter(env, "a9");
    return [await s.sql(5), await s.sql(7)];
  },
  // a10: calling a method the class does not have fails
  "a10-missing": async (env) => {
    try { await counter(env, "a10").nope(); return "no error"; } catch (e) { return "error"; }
  },
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/start") { t0 = Date.now(); LOG.length = 0; return Response.json({ ok: true }); }
    const route = ROUTES[url.pathname.slice(1)];
    if (!route) return new Response("cdpkit actors conformance worker");
    return Response.json(await route(env));
  },
  async queue(batch, env) {
    for (const m of batch.messages) {
      if (batch.queue === "a-jobs") {
        const r = await counter(env, m.body.k).add(m.body.n);
        LOG.push({ route: "a1", k: m.body.k, total: r.total, batch_size: batch.messages.length });
      } else if (batch.queue === "a-failing") {
        m.retry();
      } else if (batch.queue === "a-failing-dlq") {
        await env.DB.prepare("INSERT INTO dead VALUES (?, ?)").bind(m.body.k, m.attempts).run();
      }
    }
  },
};
