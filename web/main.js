// Runs the checks, the benches and the small sweep on this browser's WebGPU adapter through
// ceiling's wasm build (./pkg, made by `cargo xtask web`), and shows and offers the results.
// `window.ceiling` holds them for the browser test; body[data-state] says when it is done.
import init, { Session } from './pkg/ceiling_web.js';

const params = new URLSearchParams(location.search);
const phases = (params.get('phases') || 'shaders,checks,benches,sweep').split(',');
const pattern = params.get('kernels') || undefined;
const maxHeadDim = params.get('max_head_dim') ? Number(params.get('max_head_dim')) : undefined;
const $ = (id) => document.getElementById(id);

const results = { adapter: null, shaders: null, check: null, bench: null, sweep: null, errors: [], failed: 0 };
window.ceiling = results;

const status = (text) => { $('status').textContent = text; };
const show = (id) => { $(id).hidden = false; };
const row = (table, cells, cls) => {
  const tr = document.createElement('tr');
  if (cls) tr.className = cls;
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.appendChild(td);
  }
  $(table).querySelector('tbody').appendChild(tr);
};
const error = (what, e) => {
  const text = `${what}: ${e && e.message ? e.message : e}`;
  results.errors.push(text);
  const li = document.createElement('li');
  li.textContent = text;
  $('errors').appendChild(li);
  show('errors-section');
};
const offer = (name, value) => {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' }));
  a.download = name;
  a.textContent = name;
  $('downloads').appendChild(a);
  show('downloads-section');
};
// Lets the page repaint between cases.
const yieldToPage = () => new Promise((r) => setTimeout(r, 0));

function showAdapter(a) {
  const t = $('adapter');
  const rows = [
    ['name', a.name], ['backend', a.backend], ['device type', a.device_type],
    ['driver', `${a.driver} ${a.driver_info}`.trim()], ['features', a.features.join(', ') || '(none)'],
    ['largest storage binding', `${(a.max_storage_buffer_binding_size / 2 ** 20).toFixed(0)} MiB`],
    ['workgroup memory', `${a.max_compute_workgroup_storage_size} B`],
    ['subgroup size', `${a.subgroup_min_size}..${a.subgroup_max_size}`],
  ];
  for (const [k, v] of rows) {
    const tr = t.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  show('adapter-section');
}

async function runChecks(s) {
  show('checks-section');
  const names = s.check_cases(pattern, maxHeadDim);
  const every = s.check_cases(pattern, undefined);
  const left = every.length - names.length;
  const all = [];
  for (const [i, name] of names.entries()) {
    status(`Checking ${i + 1}/${names.length}: ${name}`);
    const out = JSON.parse(await s.check(name));
    all.push(...out.results);
    results.failed += out.failed;
    out.results.forEach((r, j) => {
      const worst = r.outputs.map((o) => `${o.output} ${Number(o.error).toExponential(2)} / ${o.tolerance}`).join('; ');
      const passed = out.lines[j].startsWith('ok');
      row('checks', [r.case, r.precision, `${r.variant}: ${r.plan}`, r.error ? `refused: ${r.error}` : worst,
        (r.seconds * 1e3).toFixed(1), passed ? 'ok' : 'FAIL'], passed ? 'ok' : 'fail');
      if (!passed) error('check failed', out.lines[j]);
    });
    await yieldToPage();
  }
  results.check = JSON.parse(s.check_report(JSON.stringify(all)));
  $('checks-summary').textContent =
    `${all.length - results.failed} of ${all.length} checks passed, seed ${s.seed()}.` +
    (left ? ` Left out: ${left} attention cases with head_dim above ${maxHeadDim}.` : '');
  results.left_out = left;
  offer('ceiling-check.json', results.check);
}

async function runBenches(s) {
  show('benches-section');
  status('Benchmarking the copy peak');
  const copy = JSON.parse(await s.bench_copy());
  const names = s.bench_cases(pattern, maxHeadDim);
  const all = [];
  for (const [i, name] of names.entries()) {
    status(`Benchmarking ${i + 1}/${names.length}: ${name}`);
    try {
      const r = JSON.parse(await s.bench(name));
      all.push(r);
      row('benches', [r.name, r.variant, (r.time.stats.median_s * 1e3).toFixed(3),
        (r.flops_per_s / 1e9).toFixed(2), (r.bytes_per_s / 1e9).toFixed(2), r.time.method]);
    } catch (e) {
      error(`bench ${name}`, e);
    }
    await yieldToPage();
  }
  results.bench = JSON.parse(s.bench_report(JSON.stringify(all), JSON.stringify(copy)));
  offer('ceiling-bench.json', results.bench);
}

// Compiles every WGSL variant in the browser's own compiler (Tint in Chromium) on a device
// with every feature the adapter offers; variants needing a feature it lacks are listed.
async function runShaders(s) {
  show('shaders-section');
  const adapter = await navigator.gpu.requestAdapter();
  const wanted = ['shader-f16', 'subgroups'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: wanted });
  const out = { compiled: [], failed: [], unsupported: [], features: wanted };
  for (const v of JSON.parse(s.shader_variants())) {
    const missing = v.features.filter((f) => !wanted.includes(f));
    if (missing.length) {
      out.unsupported.push(`${v.label} (needs ${missing.join(', ')})`);
      row('shaders', [v.label, `not offered here: ${missing.join(', ')}`], '');
      continue;
    }
    status(`Compiling ${v.label}`);
    const module = device.createShaderModule({ label: v.label, code: v.source });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error')
      .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
    if (errors.length) {
      out.failed.push({ label: v.label, errors });
      row('shaders', [v.label, errors.join('; ')], 'fail');
      error(`WGSL ${v.label}`, errors.join('; '));
    } else {
      out.compiled.push(v.label);
      row('shaders', [v.label, 'compiled'], 'ok');
    }
  }
  device.destroy();
  results.shaders = out;
}

async function runSweep(s) {
  const points = [];
  const lengths = Array.from(s.sweep_lengths());
  for (const [i, n] of lengths.entries()) {
    status(`Sweep: length ${n} (${i + 1}/${lengths.length})`);
    points.push(JSON.parse(await s.sweep_length(n)));
    await yieldToPage();
  }
  results.sweep = JSON.parse(s.sweep_summary(JSON.stringify(points)));
  plotSweep(results.sweep);
  offer('summary.json', results.sweep);
}

// Log-log plot of V(n) with its bootstrap interval and the fitted power law.
function plotSweep(summary) {
  show('sweep-section');
  const site = summary.points[0].sites[0].site;
  const pts = summary.points.map((p) => {
    const s = p.sites[0];
    const boot = s.variance_boot.map(Number).filter(Number.isFinite).sort((a, b) => a - b);
    const q = (f) => boot[Math.min(boot.length - 1, Math.floor(f * boot.length))];
    return { n: p.n, v: Number(s.variance), lo: q(0.025), hi: q(0.975) };
  });
  const W = 520, H = 320, m = 50;
  const lx = pts.map((p) => Math.log10(p.n));
  const ly = pts.flatMap((p) => [p.lo, p.hi, p.v]).filter((v) => v > 0).map(Math.log10);
  const [x0, x1] = [Math.min(...lx), Math.max(...lx)];
  const [y0, y1] = [Math.min(...ly) - 0.1, Math.max(...ly) + 0.1];
  const X = (n) => m + ((Math.log10(n) - x0) / (x1 - x0 || 1)) * (W - 2 * m);
  const Y = (v) => H - m - ((Math.log10(v) - y0) / (y1 - y0 || 1)) * (H - 2 * m);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">`;
  svg += `<rect x="${m}" y="${m}" width="${W - 2 * m}" height="${H - 2 * m}" fill="none" stroke="#999"/>`;
  for (const p of pts) {
    svg += `<line x1="${X(p.n)}" x2="${X(p.n)}" y1="${Y(p.lo)}" y2="${Y(p.hi)}" stroke="#36c"/>`;
    svg += `<circle cx="${X(p.n)}" cy="${Y(p.v)}" r="3" fill="#36c"/>`;
    svg += `<text x="${X(p.n)}" y="${H - m + 14}" text-anchor="middle">${p.n}</text>`;
  }
  const fit = summary.fits.find((f) => f.site === site);
  const slope = fit && fit.slope_n;
  if (slope) {
    // The fit is ln V = intercept + slope ln n.
    const b = Number(slope.slope);
    const a = Number(slope.intercept);
    if (Number.isFinite(a) && Number.isFinite(b)) {
      const at = (n) => Math.exp(a + b * Math.log(n));
      const [n0, n1] = [pts[0].n, pts[pts.length - 1].n];
      svg += `<line x1="${X(n0)}" y1="${Y(at(n0))}" x2="${X(n1)}" y2="${Y(at(n1))}" stroke="#c33" stroke-dasharray="4 3"/>`;
    }
  }
  svg += `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">context length n</text>`;
  svg += `<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">V(n), ${site}</text>`;
  svg += '</svg>';
  $('sweep-plot').innerHTML = svg;
  $('sweep-fit').textContent = slope
    ? `Slope of V(n): ${Number(slope.slope).toFixed(3)}, 95% interval ` +
      `[${slope.ci.lo?.toFixed(3)}, ${slope.ci.hi?.toFixed(3)}]` +
      (fit.expected_slope != null ? ` (the clt control expects ${fit.expected_slope}).` : '.') +
      ` Verdict: ${fit.verdict}`
    : 'no fit';
}

// Called by the wasm module's panic hook: its pending promise will never settle.
window.ceilingPanicked = (message) => {
  error('panic', message);
  status(`Failed: ${message}`);
  document.body.dataset.state = 'failed';
};

async function main() {
  status('Loading the wasm module');
  await init();
  status('Opening the WebGPU adapter');
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu)');
  const probe = await navigator.gpu.requestAdapter();
  if (!probe) throw new Error('the browser offers no WebGPU adapter');
  const i = probe.info || {};
  const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ');
  const browser = (navigator.userAgent.match(/(Firefox|Edg|Chrome|Version)\/[\d.]+/) || [''])[0];
  const s = await Session.open(params.get('seed') || undefined, `${name || 'unnamed adapter'} (WebGPU)`, browser);
  results.adapter = JSON.parse(s.adapter());
  showAdapter(results.adapter);
  const steps = { shaders: runShaders, checks: runChecks, benches: runBenches, sweep: runSweep };
  for (const p of phases) {
    if (!steps[p]) throw new Error(`unknown phase ${p}: use shaders, checks, benches, sweep`);
    try {
      await steps[p](s);
    } catch (e) {
      error(p, e);
    }
  }
  status(`Done: ${results.failed} failed checks, ${results.errors.length} errors.`);
  document.body.dataset.state = 'done';
}

main().catch((e) => {
  error('ceiling', e);
  status(`Failed: ${e && e.message ? e.message : e}`);
  document.body.dataset.state = 'failed';
});
