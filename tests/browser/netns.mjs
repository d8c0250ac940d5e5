// A network namespace joined to this one by a veth pair, for browser tests that put a page
// behind a firewall or cut its network (turn.mjs, icerestart.mjs). Needs root (ip netns, veth).
//
//   this namespace: `hostIf` hostIp/30  ─── veth ───  netns `ns`: `nsIf` nsIp/30 (+ lo)
//
// No IPv6 on the veth ends (no link-local address appearing once its duplicate detection ends),
// and both ends up and running before a browser starts: a change of addresses or links after
// that makes Chromium abort its navigations with net::ERR_NETWORK_CHANGED.

import { chmodSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export class Veth {
  // `tag`: a short name (the namespace is `<tag>-<pid>`, the veth ends `<tag>h<pid>` and
  // `<tag>n<pid>`, which must stay within 15 characters); `log(line)`: where commands go.
  constructor({ tag, hostIp, nsIp, log }) {
    Object.assign(this, { hostIp, nsIp, log });
    this.ns = `${tag}-${process.pid}`;
    this.hostIf = `${tag}h${process.pid}`;
    this.nsIf = `${tag}n${process.pid}`;
    this.made = false;
  }

  run(cmd, ...a) {
    this.log(`${cmd} ${a.join(' ')}`);
    return execFileSync(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  }

  // A command inside the namespace.
  exec(cmd, ...a) {
    return this.run('ip', 'netns', 'exec', this.ns, cmd, ...a);
  }

  setup() {
    const { ns, hostIf, nsIf } = this;
    this.run('ip', 'netns', 'add', ns);
    this.made = true;
    this.run('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns);
    this.run('ip', 'addr', 'add', `${this.hostIp}/30`, 'dev', hostIf);
    this.run('sysctl', '-qw', `net.ipv6.conf.${hostIf}.disable_ipv6=1`);
    this.exec('sysctl', '-qw', `net.ipv6.conf.${nsIf}.disable_ipv6=1`);
    this.run('ip', 'link', 'set', hostIf, 'up');
    this.run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    this.run('ip', '-n', ns, 'addr', 'add', `${this.nsIp}/30`, 'dev', nsIf);
    this.run('ip', '-n', ns, 'link', 'set', nsIf, 'up');
  }

  // Resolves once both ends are UP (at most `ms`).
  async linksUp(ms) {
    const deadline = Date.now() + ms;
    const state = (pre, dev) => JSON.parse(execFileSync('ip', [...pre, '-j', 'link', 'show', 'dev', dev]).toString())[0].operstate;
    for (;;) {
      const s = [state([], this.hostIf), state(['-n', this.ns], this.nsIf)];
      if (s.every((x) => x === 'UP')) return s;
      if (Date.now() > deadline) throw new Error(`veth ends not up within ${ms} ms: ${s}`);
      await new Promise((res) => { setTimeout(res, 50); });
    }
  }

  // Loads nftables `rules` (text) inside the namespace, keeping a copy at `file`.
  nft(rules, file) {
    writeFileSync(file, rules);
    this.exec('nft', '-f', file);
    return this.exec('nft', 'list', 'ruleset');
  }

  // The first `counter packets N` of `chain` of table inet `table` inside the namespace.
  counter(table, chain) {
    const r = spawnSync('ip', ['netns', 'exec', this.ns, 'nft', 'list', 'chain', 'inet', table, chain], { encoding: 'utf8' });
    const m = /counter packets (\d+)/.exec(r.stdout || '');
    return m ? Number(m[1]) : null;
  }

  // A wrapper script in `dir` that runs Chromium inside the namespace (playwright takes it for
  // the browser; ip netns exec keeps the pipe file descriptors playwright drives it by).
  chromiumWrapper(chromiumBin, dir) {
    const path = join(dir, `chromium-in-${this.ns}.sh`);
    writeFileSync(path, `#!/bin/sh\nexec ip netns exec '${this.ns}' '${chromiumBin}' "$@"\n`);
    chmodSync(path, 0o755);
    return path;
  }

  cleanup() {
    if (!this.made) return;
    this.made = false;
    spawnSync('ip', ['link', 'del', this.hostIf], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
  }
}
