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
  async viaKv(who) {            // awaits KV: any I/O but storage lets queued requests in
    await this.mark(`${who}:start`);
    await this.env.CACHE.get("nothing");
    await this.mark(`${who}:end`);
  }
  async viaD1(who) {
    await this.mark(`${who}:start`);
    await this.env.DB.prepare("SELECT 1 AS one").first();
    await this.mark(`${who}:end`);
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
    await this.ctx.storage.put("armed", now());   // times are measured from here, so a slow
    await this.ctx.storage.put("due", Date.now() + delay * 1000);   // start does not count
    await this.ctx.storage.setAlarm(Date.now() + delay * 1000);
  }
  async alarm(info) {
    const fired = (await this.ctx.storage.get("fired")) ?? [];
    const armed = (await this.ctx.storage.get("armed")) ?? 0;
    fired.push({ t: Math.round((now() - armed) * 1000) / 1000, retry: info?.retryCount ?? 0, alarm: await this.ctx.storage.getAlarm() });
    await this.ctx.storage.put("fired", fired);
    const left = await this.ctx.storage.get("failures");
    if (left > 0) {
      await this.ctx.storage.put("failures", left - 1);
      throw new Error("alarm failed");
    }
  }
  async armPast(seconds) {      // what getAlarm() says right after setting a past time
    const now = Date.now();
    await this.ctx.storage.put("fired", []);
    await this.ctx.storage.put("failures", 0);
    await this.ctx.storage.setAlarm(now - seconds * 1000);
    return Math.round(((await this.ctx.storage.getAlarm()) - now) / 1000);
  }
  async pending() {            // the alarm time relative to when it was first due, or null
    const alarm = await this.ctx.storage.getAlarm();
    const due = await this.ctx.storage.get("due");
    return [alarm === null ? null : Math.round((alarm - due) / 100) / 10,
            ((await this.ctx.storage.get("fired")) ?? []).map((f) => [f.retry, f.alarm])];
  }
  async fired() {
    return (await this.ctx.storage.get("fired")) ?? [];
  }
}

// b*: gates, alarms, transactions, multi-statement SQL, blockConcurrencyWhile, row counts
export class Probe extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.ready = false;
    this.ctx.blockConcurrencyWhile(async () => {   // no request runs before this finishes
      await sleep(0.2);
      this.ready = true;
    });
  }
  async hello(who) {
    return [who, this.ready];
  }
  async critical(who) {          // the callback keeps the gate closed through a timer
    await this.ctx.blockConcurrencyWhile(async () => {
      await this.mark(`${who}:start`);
      await sleep(0.1);
      await this.mark(`${who}:end`);
    });
    return who;
  }
  async mark(who) {
    const log = (await this.ctx.storage.get("log")) ?? [];
    log.push(who);
    await this.ctx.storage.put("log", log);
  }
  async order() {
    return (await this.ctx.storage.get("log")) ?? [];
  }
  async boom() {                 // a failing callback resets the object
    this.ready = "boomed";
    await this.ctx.blockConcurrencyWhile(async () => { throw new Error("init failed"); });
    return "not reached";
  }
  async memory() {
    return this.ready;
  }
  async rollback() {
    const txnResult = await this.ctx.storage.transaction(async (txn) => {
      await txn.put("rb", 1);
      txn.rollback();
      txn.rollback();              // allowed twice
      let after = "no error";
      try { await txn.get("rb"); } catch (e) { after = e.message; }
      return after;
    });
    return [txnResult, (await this.ctx.storage.get("rb")) ?? null];
  }
  async multi() {
    const sql = this.ctx.storage.sql;
    const rows = sql.exec("CREATE TABLE IF NOT EXISTS m(x); INSERT INTO m VALUES (1); " +
                          "INSERT INTO m VALUES (2); SELECT count(*) AS c FROM m").toArray();
    const out = [rows];
    for (const q of ["INSERT INTO m VALUES (?); SELECT count(*) AS c FROM m", ";", ""]) {
      try { sql.exec(q, 5); out.push("no error"); } catch (e) { out.push(e.message); }
    }
    const c = sql.exec("INSERT INTO m VALUES (3); SELECT x FROM m WHERE x > ?", 1);
    out.push([c.toArray(), c.rowsRead, c.rowsWritten]);
    return out;
  }
  async rows(statements) {
    const sql = this.ctx.storage.sql;
    return statements.map((q) => {
      const c = sql.exec(q);
      const n = c.toArray().length;
      return [n, c.rowsRead, c.rowsWritten];
    });
  }
}

const ROW_STATEMENTS = [
  "CREATE TABLE r(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v INTEGER)",
  "CREATE TABLE e(x)",
  "INSERT INTO r(name, v) VALUES ('a', 1), ('b', 2), ('c', 3)",
  "INSERT INTO e VALUES (1)",
  "SELECT * FROM r",
  "SELECT count(*) AS n FROM r",
  "SELECT * FROM r WHERE id = 2",
  "SELECT * FROM r WHERE name = 'b'",
  "SELECT * FROM r WHERE v = 2",
  "SELECT * FROM r WHERE id > 1",
  "SELECT * FROM r ORDER BY v DESC LIMIT 1",
  "SELECT max(id) AS m FROM r",
  "UPDATE r SET v = v + 1 WHERE name = 'a'",
  "UPDATE r SET name = 'z' WHERE id = 3",
  "UPDATE r SET v = 0",
  "DELETE FROM r WHERE name = 'b'",
  "DELETE FROM e",
  "SELECT * FROM e",
  "SELECT count(*) AS n FROM e",
  "INSERT INTO e SELECT id FROM r",
  "DELETE FROM r",
];

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

Object.assign(ROUTES, {
  // b1: awaiting KV or D1 (any I/O but the object's storage) lets queued requests in
  "b1-kv": async (env) => {
    const s = counter(env, "b1-kv");
    await Promise.all(["A", "B", "C"].map((w) => s.viaKv(w)));
    const log = await s.order();
    return [log.slice(0, 3).sort(), log.slice(3).sort()];
  },
  "b1-d1": async (env) => {
    const s = counter(env, "b1-d1");
    await Promise.all(["A", "B", "C"].map((w) => s.viaD1(w)));
    const log = await s.order();
    return [log.slice(0, 3).sort(), log.slice(3).sort()];
  },
  // b2: a past alarm time becomes now; a failed alarm keeps its time until it succeeds
  "b2-arm": async (env) => {
    const past = await env.ALARMS.get(env.ALARMS.idFromName("past")).armPast(60);
    await env.ALARMS.get(env.ALARMS.idFromName("retry")).arm(0.5, 1);
    return past;
  },
  "b2-pending": async (env) => env.ALARMS.get(env.ALARMS.idFromName("retry")).pending(),
  "b2-done": async (env) => env.ALARMS.get(env.ALARMS.idFromName("retry")).pending(),
  // b3: txn.rollback()
  "b3-rollback": async (env) => env.PROBE.get(env.PROBE.idFromName("b3")).rollback(),
  // b4: several statements in one sql.exec
  "b4-multi": async (env) => env.PROBE.get(env.PROBE.idFromName("b4")).multi(),
  // b5: blockConcurrencyWhile in the constructor and in methods; a failing callback resets
  "b5-ctor": async (env) => {
    const s = env.PROBE.get(env.PROBE.idFromName("b5-ctor"));
    return await Promise.all(["A", "B"].map((w) => s.hello(w)));
  },
  "b5-method": async (env) => {
    const s = env.PROBE.get(env.PROBE.idFromName("b5-method"));
    await Promise.all(["A", "B", "C"].map((w) => s.critical(w)));
    return await s.order();
  },
  "b5-fail": async (env) => {
    const s = env.PROBE.get(env.PROBE.idFromName("b5-fail"));
    await s.hello("warm");
    const settled = await Promise.allSettled([s.boom(), s.memory()]);
    const out = settled.map((r) => r.status === "fulfilled" ? ["ok", r.value] : ["error", r.reason.message]);
    out.push(await env.PROBE.get(env.PROBE.idFromName("b5-fail")).memory());
    return out;
  },
  // b6: rows read / written, in SQL storage cursors and in D1's meta
  "b6-rows": async (env) => {
    const sqlRows = await env.PROBE.get(env.PROBE.idFromName("b6")).rows(ROW_STATEMENTS);
    const d1Rows = [];
    for (const q of ROW_STATEMENTS) {
      const r = await env.DB.prepare(q).all();
      d1Rows.push([r.results.length, r.meta.rows_read, r.meta.rows_written]);
    }
    return { sql: sqlRows, d1: d1Rows };
  },
});

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
