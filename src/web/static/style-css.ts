/** The web UI's only stylesheet: system fonts, no external resources, light and dark. */
export const STYLE_CSS = `
:root {
  --bg: #f6f5fb;
  --surface: #ffffff;
  --surface-2: #f0eef8;
  --text: #1c1a2b;
  --muted: #545170;
  --border: #dedbeb;
  --accent: #5436d6;
  --accent-hover: #3d22b3;
  --night: #1b1438;
  --night-2: #2c1f63;
  --moon: #f4b942;
  --focus: #f4b942;
  --code-bg: #171327;
  --code-text: #f3f0ff;
  --ok-bg: #dcf5e3; --ok-text: #145c2b;
  --bad-bg: #fde3e1; --bad-text: #9b1c13;
  --warn-bg: #fff1cf; --warn-text: #6b4300;
  --idle-bg: #ecebf2; --idle-text: #46445a;
  --radius: 10px;
  --shadow: 0 1px 2px rgb(20 10 60 / 6%), 0 4px 16px rgb(20 10 60 / 5%);
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #110d22;
    --surface: #1a1530;
    --surface-2: #231d3d;
    --text: #ece9f8;
    --muted: #b3aed0;
    --border: #342c57;
    --accent: #b4a3ff;
    --accent-hover: #d3c9ff;
    --night: #0b0818;
    --night-2: #1f1650;
    --code-bg: #0b0818;
    --ok-bg: #12371f; --ok-text: #9be6b0;
    --bad-bg: #46130f; --bad-text: #ffb4ab;
    --warn-bg: #3d2c06; --warn-text: #ffd98a;
    --idle-bg: #2a2540; --idle-text: #cdc8e4;
    --shadow: none;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif;
  overflow-wrap: anywhere;
}
a { color: var(--accent); text-underline-offset: 2px; }
a:hover { color: var(--accent-hover); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; border-radius: 4px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.92em; }
h1, h2, h3 { line-height: 1.25; margin: 0 0 0.5rem; }
h1 { font-size: clamp(1.6rem, 4vw, 2.2rem); letter-spacing: -0.01em; }
h2 { font-size: 1.2rem; }
h3 { font-size: 1.05rem; }
p { margin: 0 0 0.75rem; }
.skip-link {
  position: absolute; left: 0.75rem; top: -4rem; z-index: 10;
  background: var(--moon); color: #1b1438; padding: 0.5rem 0.9rem; border-radius: 6px; font-weight: 600;
}
.skip-link:focus { top: 0.75rem; }
.visually-hidden {
  position: absolute !important; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
}
.container { max-width: 1140px; margin: 0 auto; padding: 0 1.25rem; }

/* Header and footer */
.site-header { background: var(--night); color: #fff; }
.site-header .container { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.5rem; min-height: 3.75rem; padding-block: 0.5rem; }
.brand { display: inline-flex; align-items: center; gap: 0.6rem; color: #fff; text-decoration: none; font-weight: 700; font-size: 1.1rem; }
.brand:hover { color: #fff; }
.brand svg { flex: none; }
.brand small { font-weight: 500; color: #d8d2f5; font-size: 0.8rem; border: 1px solid #54479a; border-radius: 999px; padding: 0 0.5rem; }
.site-nav ul { display: flex; flex-wrap: wrap; gap: 0.25rem; list-style: none; margin: 0; padding: 0; }
.site-nav a { color: #e9e5ff; text-decoration: none; padding: 0.35rem 0.7rem; border-radius: 6px; display: inline-block; }
.site-nav a:hover { background: #ffffff1f; color: #fff; }
.site-nav a[aria-current="page"] { background: #ffffff26; color: #fff; font-weight: 600; }
.site-footer { margin-top: 3rem; padding: 1.5rem 0 2.5rem; color: var(--muted); font-size: 0.9rem; border-top: 1px solid var(--border); }

/* Hero band */
.hero { background: linear-gradient(135deg, var(--night) 0%, var(--night-2) 60%, #4a2aa8 100%); color: #fff; padding: 2rem 0 2.25rem; }
.hero p { color: #e4dffc; }
.hero a { color: #fff; }
.hero .stats { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; margin: 0 0 1.25rem; padding: 0; list-style: none; }
.hero .stats strong { font-size: 1.3rem; color: #fff; display: block; line-height: 1.1; }
.hero .stats li { color: #d8d2f5; font-size: 0.9rem; }
.search-form { display: grid; grid-template-columns: minmax(0, 1fr) auto auto auto auto; gap: 0.75rem; align-items: end; }
.search-form label { display: block; font-size: 0.82rem; font-weight: 600; color: #e4dffc; margin-bottom: 0.25rem; }
.search-form input, .search-form select {
  width: 100%; font: inherit; color: #1c1a2b; background: #fff; border: 2px solid transparent;
  border-radius: 8px; padding: 0.55rem 0.75rem; min-height: 2.75rem;
}
.search-form select { max-width: 14rem; }
.search-form input:focus-visible, .search-form select:focus-visible { outline: 3px solid var(--moon); outline-offset: 1px; }
.button {
  font: inherit; font-weight: 600; cursor: pointer; border: 0; border-radius: 8px;
  background: var(--moon); color: #1b1438; padding: 0.55rem 1.1rem; min-height: 2.75rem;
}
.button:hover { background: #ffd277; }
.button.secondary { background: var(--surface-2); color: var(--text); border: 1px solid var(--border); min-height: 2.25rem; padding: 0.3rem 0.8rem; font-size: 0.88rem; }
.button.secondary:hover { background: var(--border); }

/* Page layout */
.page { padding-top: 1.75rem; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 320px; gap: 1.75rem; align-items: start; }
.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 1.1rem 1.25rem; box-shadow: var(--shadow); margin-bottom: 1.25rem; }
.card > h2:first-child { margin-bottom: 0.75rem; }
.muted { color: var(--muted); }
.results-head { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: baseline; gap: 0.5rem; margin-bottom: 0.75rem; }
.results-head h2 { margin: 0; }
.clear-link { font-size: 0.92rem; }

/* Module list */
.module-list { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.75rem; }
.module-item { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 0.9rem 1.1rem; box-shadow: var(--shadow); }
.module-item h3 { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.25rem 0.6rem; margin-bottom: 0.3rem; }
.module-item h3 a { text-decoration: none; }
.module-item h3 a:hover { text-decoration: underline; }
.module-item .desc { margin-bottom: 0.45rem; }
.meta { display: flex; flex-wrap: wrap; gap: 0.3rem 0.9rem; color: var(--muted); font-size: 0.88rem; margin: 0; padding: 0; list-style: none; align-items: center; }
.version { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85rem; color: var(--muted); font-weight: 500; }
.keywords { display: flex; flex-wrap: wrap; gap: 0.35rem; list-style: none; margin: 0.5rem 0 0; padding: 0; }
.keywords a { display: inline-block; font-size: 0.8rem; padding: 0.05rem 0.55rem; border-radius: 999px; background: var(--surface-2); color: var(--muted); text-decoration: none; border: 1px solid var(--border); }
.keywords a:hover { color: var(--accent); border-color: var(--accent); }

/* Badges */
.badge { display: inline-block; font-size: 0.76rem; font-weight: 600; line-height: 1.5; padding: 0 0.5rem; border-radius: 999px; white-space: nowrap; border: 1px solid transparent; }
.badge.ok { background: var(--ok-bg); color: var(--ok-text); }
.badge.bad, .badge.yanked { background: var(--bad-bg); color: var(--bad-text); }
.badge.warn, .badge.deprecated { background: var(--warn-bg); color: var(--warn-text); }
.badge.idle { background: var(--idle-bg); color: var(--idle-text); }
.badge.source { background: var(--surface-2); color: var(--text); border-color: var(--border); }
.badge.source::before { content: ""; display: inline-block; width: 0.5rem; height: 0.5rem; border-radius: 50%; margin-right: 0.35rem; background: var(--dot, #7a6ad8); vertical-align: 0.05em; }
.badge.source.s0 { --dot: #6d4aff; } .badge.source.s1 { --dot: #e0892b; } .badge.source.s2 { --dot: #1f9d6b; }
.badge.source.s3 { --dot: #d6336c; } .badge.source.s4 { --dot: #1c7ed6; } .badge.source.s5 { --dot: #8a8a8a; }

/* Pagination */
.pager { display: flex; justify-content: space-between; align-items: center; gap: 1rem; margin-top: 1.25rem; flex-wrap: wrap; }
.pager a { font-weight: 600; }

/* Code and copy */
.command { display: flex; align-items: stretch; gap: 0.5rem; background: var(--code-bg); color: var(--code-text); border-radius: 8px; padding: 0.5rem 0.5rem 0.5rem 0.9rem; margin: 0.25rem 0 0.75rem; }
.command code { flex: 1; align-self: center; white-space: pre-wrap; overflow-wrap: anywhere; color: var(--code-text); }
.command .copy { flex: none; background: #ffffff1a; color: #fff; border: 1px solid #ffffff33; border-radius: 6px; font: inherit; font-size: 0.82rem; font-weight: 600; padding: 0.2rem 0.7rem; cursor: pointer; min-height: 2.25rem; }
.command .copy:hover { background: #ffffff33; }
.command .copy[data-state="done"] { background: var(--ok-bg); color: var(--ok-text); }

/* Module page */
.breadcrumb ol { display: flex; flex-wrap: wrap; gap: 0.25rem; list-style: none; padding: 0; margin: 0 0 0.75rem; font-size: 0.9rem; color: var(--muted); }
.breadcrumb li + li::before { content: "/"; margin-right: 0.25rem; color: var(--muted); }
.module-title { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.25rem 0.75rem; }
.module-title h1 { margin: 0; }
.lead { font-size: 1.1rem; color: var(--muted); margin: 0.35rem 0 1rem; }
.notice { border-radius: var(--radius); padding: 0.75rem 1rem; margin-bottom: 1.25rem; border: 1px solid transparent; }
.notice.deprecated { background: var(--warn-bg); color: var(--warn-text); border-color: #e8c46d; }
.notice.yanked { background: var(--bad-bg); color: var(--bad-text); border-color: #f1a39b; }
.facts { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: 0.35rem 1rem; margin: 0; }
.facts dt { color: var(--muted); font-size: 0.9rem; }
.facts dd { margin: 0; }
.dep-list { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.3rem; }
.dep-list li { display: flex; flex-wrap: wrap; gap: 0.25rem 0.6rem; align-items: baseline; }
.columns { columns: 2 14rem; column-gap: 1.5rem; }

/* Tables */
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; padding: 0.5rem 0.6rem; border-bottom: 1px solid var(--border); vertical-align: top; }
thead th { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 600; }
tbody tr:hover { background: var(--surface-2); }
tr.selected { background: var(--surface-2); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }

/* Status page */
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(12.5rem, 1fr)); gap: 1rem; margin-bottom: 1.25rem; }
.tile { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 0.9rem 1.1rem; box-shadow: var(--shadow); }
.tile h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); margin-bottom: 0.3rem; }
.tile .big { font-size: 1.45rem; font-weight: 700; line-height: 1.2; display: block; }
.tile p { margin: 0.2rem 0 0; font-size: 0.9rem; color: var(--muted); }
.chart { width: 100%; height: auto; display: block; }
.chart .bar { fill: var(--accent); }
.chart .bar:hover { fill: var(--moon); }
.chart .grid { stroke: var(--border); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 11px; font-family: system-ui, sans-serif; }
details summary { cursor: pointer; color: var(--accent); margin-top: 0.5rem; }

@media (max-width: 880px) {
  .layout { grid-template-columns: minmax(0, 1fr); }
  .search-form { grid-template-columns: 1fr 1fr; }
  .search-form .field-q { grid-column: 1 / -1; }
  .search-form select { max-width: none; }
  .search-form .button { grid-column: 1 / -1; }
}
@media (max-width: 480px) {
  .container { padding: 0 0.9rem; }
  .brand small { display: none; }
  .page { padding-top: 1.25rem; }
  .hero { padding: 1.5rem 0 1.75rem; }
  .card { padding: 0.9rem 1rem; }
  .facts { grid-template-columns: minmax(0, 1fr); }
  .facts dd { margin-bottom: 0.4rem; }
}
@media (prefers-reduced-motion: no-preference) {
  .command .copy, .button, .site-nav a { transition: background-color 0.15s; }
}
`;
