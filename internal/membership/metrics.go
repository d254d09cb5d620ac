package membership

import "github.com/prometheus/client_golang/prometheus"

var descMembers = prometheus.NewDesc("depot_gossip_members",
	"Gossip members by role and state, as this process sees them.", []string{"role", "state"}, nil)

// membersCollector exports a gossip view as depot_gossip_members{role,state},
// computed at scrape time.
type membersCollector struct {
	view interface{ Members() []Node }
}

// NewCollector returns a prometheus collector of depot_gossip_members for
// the gossip view of m (a *Membership or anything with its Members). Every
// state is exported for each role seen, zero when no member is in it, so a
// dashboard sees "0 dead" rather than no series.
func NewCollector(m interface{ Members() []Node }) prometheus.Collector {
	return membersCollector{view: m}
}

func (c membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMembers }

func (c membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[[2]string]int)
	for _, n := range c.view.Members() {
		for _, st := range []string{StateAlive, StateSuspect, StateDead, StateLeft} {
			counts[[2]string{n.Meta.Role, st}] += 0
		}
		counts[[2]string{n.Meta.Role, n.State}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
