package client

import (
	"context"
	"sync"

	"depot"
)

// lease is a run of needle ids reserved on one writable volume.
type lease struct {
	vol  depot.Volume
	next depot.NeedleID
	end  depot.NeedleID // exclusive
}

// leasePool hands out needle ids from up to Config.Leases leases in turn,
// so that concurrent writes go to different volumes and most writes do not
// wait on the nameserver.
type leasePool struct {
	c *Client

	mu     sync.Mutex
	leases []*lease
	turn   int
	// refill serialises Assign calls so that a burst of writers does not
	// ask for many leases at once.
	refill sync.Mutex
}

// take returns a volume and a needle id on it. avoid lists volumes that
// already failed this write.
func (p *leasePool) take(ctx context.Context, avoid map[depot.VolumeID]bool) (depot.Volume, depot.NeedleID, error) {
	for attempt := 0; attempt < 4; attempt++ {
		if vol, id, ok := p.tryTake(avoid); ok {
			return vol, id, nil
		}
		if err := p.grow(ctx, avoid); err != nil {
			return depot.Volume{}, 0, err
		}
	}
	// The nameserver keeps answering volumes we must avoid: take a fresh
	// lease and use it regardless of avoid.
	a, err := p.c.ns.Assign(ctx, p.c.cfg.K, p.c.cfg.M, p.c.cfg.LeaseSize)
	if err != nil {
		return depot.Volume{}, 0, err
	}
	p.c.rememberVolume(a.Volume)
	p.add(&lease{vol: a.Volume, next: a.First + 1, end: a.First + depot.NeedleID(a.Count)})
	return a.Volume, a.First, nil
}

func (p *leasePool) tryTake(avoid map[depot.VolumeID]bool) (depot.Volume, depot.NeedleID, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.leases)
	if n < p.c.cfg.Leases {
		return depot.Volume{}, 0, false // grow first so that writes spread
	}
	for i := 0; i < n; i++ {
		l := p.leases[(p.turn+i)%n]
		if avoid[l.vol.ID] || l.next >= l.end {
			continue
		}
		p.turn = (p.turn + i + 1) % n
		id := l.next
		l.next++
		return l.vol, id, true
	}
	return depot.Volume{}, 0, false
}

// grow asks the nameserver for one more lease, replacing an exhausted one.
func (p *leasePool) grow(ctx context.Context, avoid map[depot.VolumeID]bool) error {
	p.refill.Lock()
	defer p.refill.Unlock()
	// Another writer may have refilled while we waited.
	p.mu.Lock()
	usable := 0
	for _, l := range p.leases {
		if l.next < l.end && !avoid[l.vol.ID] {
			usable++
		}
	}
	full := len(p.leases) >= p.c.cfg.Leases
	p.mu.Unlock()
	if full && usable > 0 {
		return nil
	}
	a, err := p.c.ns.Assign(ctx, p.c.cfg.K, p.c.cfg.M, p.c.cfg.LeaseSize)
	if err != nil {
		return err
	}
	p.c.rememberVolume(a.Volume)
	p.add(&lease{vol: a.Volume, next: a.First, end: a.First + depot.NeedleID(a.Count)})
	return nil
}

func (p *leasePool) add(l *lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Drop exhausted leases, then cap the pool. Two leases may name the
	// same volume; their ids differ.
	kept := p.leases[:0]
	for _, old := range p.leases {
		if old.next < old.end {
			kept = append(kept, old)
		}
	}
	kept = append(kept, l)
	if len(kept) > p.c.cfg.Leases {
		kept = kept[len(kept)-p.c.cfg.Leases:]
	}
	p.leases = kept
}

// drop forgets every lease on volume id, after a write to it failed.
func (p *leasePool) drop(id depot.VolumeID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.leases[:0]
	for _, l := range p.leases {
		if l.vol.ID != id {
			kept = append(kept, l)
		}
	}
	p.leases = kept
}
