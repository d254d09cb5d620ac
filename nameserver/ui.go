package nameserver

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// The status page. GET /ui is a page for people: the same facts and the
// same health verdict as `depot admin status` (both come from
// nsclient.Assess), one bar per dataserver for its space, repair progress
// with the time left. A small script fetches the page again every few
// seconds and swaps the part that changed, so it stays live without
// flicker; without script a meta refresh does it. GET /ui/health is the
// verdict and its facts as JSON, what `depot admin status --json` prints.
// Both need the admin credential (access.go); a browser sends it as the
// password of HTTP Basic auth.

// uiRefresh is how often the page refreshes itself.
const uiRefresh = 2 * time.Second

// routeUI registers the status page and its JSON on mux.
func (s *Server) routeUI(mux *http.ServeMux) {
	s.route(mux, "GET /ui", s.handleUI)
	s.route(mux, "GET /ui/health", s.handleHealth)
}

// Health computes the cluster's health verdict with its facts.
func (s *Server) Health(ctx context.Context) (nsclient.Health, error) {
	st, err := s.Status(ctx)
	if err != nil {
		return nsclient.Health{}, fmt.Errorf("status: %w", err)
	}
	rs, err := s.RepairStatus(ctx)
	if err != nil {
		return nsclient.Health{}, fmt.Errorf("repair status: %w", err)
	}
	return nsclient.Assess(st, rs, s.Volumes()), nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h, err := s.Health(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, h)
}

// uiData is what the page template renders.
type uiData struct {
	nsclient.Health
	Counts  map[string]int // dataservers by gossip state
	States  []stateCount   // volumes by state, in a fixed order
	Now     time.Time
	Refresh int // milliseconds
}

type stateCount struct {
	State depot.VolumeState
	N     int
}

func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	h, err := s.Health(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "status page", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := uiData{Health: h, Counts: map[string]int{}, Now: time.Now(), Refresh: int(uiRefresh / time.Millisecond)}
	slices.SortFunc(d.Status.Dataservers, func(a, b nsclient.Dataserver) int {
		return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID)) // ds2 before ds10
	})
	for _, ds := range d.Status.Dataservers {
		d.Counts[ds.State]++
	}
	order := []depot.VolumeState{depot.VolumeWritable, depot.VolumeFull, depot.VolumeDegraded, depot.VolumeRepairing}
	for _, st := range order {
		d.States = append(d.States, stateCount{st, d.Status.ByState[st]})
	}
	for st, n := range d.Status.ByState {
		if !slices.Contains(order, st) {
			d.States = append(d.States, stateCount{st, n})
		}
	}
	var buf bytes.Buffer
	if err := uiTemplate.Execute(&buf, d); err != nil {
		s.log.ErrorContext(r.Context(), "status page template", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

var uiFuncs = template.FuncMap{
	"size": func(n any) string {
		switch v := n.(type) {
		case uint64:
			return nsclient.FormatSize(int64(v))
		case int64:
			return nsclient.FormatSize(v)
		}
		return fmt.Sprint(n)
	},
	// usedPct is the share of a dataserver's space in use, 0 to 100.
	"usedPct": func(d nsclient.Dataserver) float64 {
		if d.Used+d.Free == 0 {
			return 0
		}
		return 100 * float64(d.Used) / float64(d.Used+d.Free)
	},
	"jobPct": func(j nsclient.RepairJob) float64 {
		if j.Total <= 0 {
			return 0
		}
		return 100 * float64(j.Bytes) / float64(j.Total)
	},
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String()
	},
	"rate": func(bps float64) string { return nsclient.FormatSize(int64(bps)) },
	"eta":  func(d time.Duration) string { return d.Round(time.Second).String() },
	"healthClass": func(h string) string {
		switch h {
		case nsclient.Healthy:
			return "ok"
		case nsclient.Degraded:
			return "warn"
		}
		return "bad"
	},
}

var uiTemplate = template.Must(template.New("ui").Funcs(uiFuncs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>depot: {{.Health.Health}}</title>
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .4em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border-bottom:1px solid #e4e4e4;padding:.3em .7em;text-align:left;white-space:nowrap}
th{font-weight:600;color:#555}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:.7em 1em;border-radius:6px;font-size:1.1em;margin-bottom:1em}
.verdict b{margin-right:.6em}
.ok{background:#e3f5e1;color:#1b5e20}.warn{background:#fff4d6;color:#7a5200}.bad{background:#fde2e1;color:#8e1c1c}
.pill{display:inline-block;padding:0 .6em;border-radius:1em;font-size:.9em}
.alive{background:#e3f5e1;color:#1b5e20}.suspect{background:#fff4d6;color:#7a5200}
.dead,.left,.unknown{background:#fde2e1;color:#8e1c1c}
.bar{width:14em;height:.9em;background:#e8e8e8;border-radius:3px;overflow:hidden;display:inline-block;vertical-align:middle}
.bar span{display:block;height:100%;background:#4a7bd0}.bar.repair span{background:#d08a2a}
.facts span{margin-right:1.5em}.muted{color:#777;font-size:.9em}
#stale{background:#fde2e1;color:#8e1c1c;padding:.4em 1em;border-radius:6px}
</style></head><body>
<h1>depot cluster status</h1>
<p id="stale" hidden></p>
<div id="status" data-health="{{.Health.Health}}">
<div class="verdict {{healthClass .Health.Health}}" id="verdict"><b>{{.Health.Health}}</b> {{.Verdict}}</div>
<p class="facts">
<span id="ds-counts">dataservers: <b id="alive">{{index .Counts "alive"}}</b> alive, <b id="suspect">{{index .Counts "suspect"}}</b> suspect, <b id="dead">{{index .Counts "dead"}}</b> dead{{with index .Counts "left"}}, {{.}} left{{end}}{{with index .Counts "unknown"}}, {{.}} unknown{{end}}</span>
<span>volumes: <b>{{.Status.Volumes}}</b></span>
<span>objects: <b>{{.Status.Objects}}</b> ({{size .Status.Bytes}})</span>
<span>buckets: {{.Status.Buckets}}</span>
<span>pending deletes: {{.Status.Deletes}}</span>
<span>ready: {{if .Status.Ready}}yes{{else}}<b>no</b>{{end}}</span>
</p>

<h2>Dataservers</h2>
<table id="dataservers"><thead><tr><th>id</th><th>state</th><th>rack</th><th>space used</th><th class="num">used</th><th class="num">free</th><th class="num">volumes</th><th>address</th><th>state for</th></tr></thead><tbody>
{{range .Status.Dataservers}}<tr data-id="{{.ID}}" data-state="{{.State}}"><td>{{.ID}}</td><td><span class="pill {{.State}}">{{.State}}</span></td><td>{{or .Rack "-"}}</td>
<td><span class="bar" title="{{printf "%.1f" (usedPct .)}}% used"><span style="width:{{printf "%.1f" (usedPct .)}}%"></span></span> {{printf "%.0f" (usedPct .)}}%</td>
<td class="num">{{size .Used}}</td><td class="num">{{size .Free}}</td><td class="num">{{.Volumes}}</td><td>{{.Addr}}</td><td>{{ago .Since $.Now}}</td></tr>
{{else}}<tr><td colspan="9">no dataservers have joined</td></tr>
{{end}}</tbody></table>

<h2>Volumes by state</h2>
<table id="volumes"><tbody>{{range .States}}<tr data-state="{{.State}}"><td>{{.State}}</td><td class="num">{{.N}}</td></tr>{{end}}
{{range $scheme, $m := .Status.Schemes}}<tr><td class="muted">scheme {{$scheme}}</td><td class="muted">{{range $st, $n := $m}}{{$st}} {{$n}} {{end}}</td></tr>{{end}}</tbody></table>

<h2>Repair</h2>
<p id="repair">degraded volumes: <b>{{.Repair.Degraded}}</b> · degraded needles: <b id="missed">{{.Repair.Missed}}</b> shard(s) awaiting needle-level repair{{if gt .MostDown 0}} · most members down in one volume: <b>{{.MostDown}}</b> of {{.M}} parity{{end}}</p>
{{if .Repair.Jobs}}<p id="progress"><span class="bar repair"><span style="width:{{printf "%.1f" .Repair.Percent}}%"></span></span>
{{len .Repair.Jobs}} shard rebuild(s): {{size .Repair.Bytes}} of {{size .Repair.Total}} ({{printf "%.0f" .Repair.Percent}}%){{if gt .Repair.Rate 0.0}}, {{rate .Repair.Rate}}/s, <b>about {{eta .Repair.ETA}} left</b>{{else}}, estimating time left{{end}}</p>
<table id="jobs"><thead><tr><th class="num">volume</th><th class="num">shard</th><th>from</th><th>to</th><th class="num">needles</th><th>done</th><th>running for</th><th>failures</th></tr></thead><tbody>
{{range .Repair.Jobs}}<tr><td class="num">{{.Volume}}</td><td class="num">{{.Index}}</td><td>{{.From}}</td><td>{{.To}}</td><td class="num">{{.Needles}}</td>
<td><span class="bar repair"><span style="width:{{printf "%.1f" (jobPct .)}}%"></span></span> {{printf "%.0f" (jobPct .)}}%</td><td>{{ago .Started $.Now}}</td><td>{{if .Failures}}<b>{{.Failures}} in a row</b>: {{.Error}}{{else}}-{{end}}{{if .Skipped}} · {{.Skipped}} needle(s) skipped{{end}}</td></tr>
{{end}}</tbody></table>
{{else}}<p id="progress">repair: idle</p>{{end}}
<p class="muted">nameserver time {{.Now.Format "2006-01-02 15:04:05 MST"}} · refreshes every {{.Refresh}} ms · <a href="/ui/health">JSON</a> · <a href="/metrics">metrics</a></p>
</div>
<script>
(() => {
	const every = {{.Refresh}};
	const stale = document.getElementById("stale");
	async function tick() {
		try {
			const r = await fetch(location.pathname, {cache: "no-store"});
			if (!r.ok) throw new Error("HTTP " + r.status);
			const doc = new DOMParser().parseFromString(await r.text(), "text/html");
			const next = doc.getElementById("status");
			if (!next) throw new Error("no status in the answer");
			document.getElementById("status").replaceWith(document.adoptNode(next));
			document.title = doc.title;
			stale.hidden = true;
		} catch (e) {
			stale.textContent = "cannot reach the nameserver (" + e.message + "): showing the last status, retrying";
			stale.hidden = false;
		}
		setTimeout(tick, every);
	}
	setTimeout(tick, every);
})();
</script>
</body></html>
`))
