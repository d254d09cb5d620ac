package nameserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

type scheme struct{ k, m int }

// cache is the in-memory copy of the cluster map: every volume and every
// dataserver record. It is written only after a transaction that changed
// them committed (store.afterCommit), so it never shows uncommitted state,
// and it makes volume lookups a map access.
type cache struct {
	mu          sync.RWMutex
	volumes     map[depot.VolumeID]volumeRecord
	writable    map[scheme]map[depot.VolumeID]struct{}
	dataservers map[string]dataserverRecord
	nameservers map[string]nsclient.NameserverInfo // raft members' HTTP addresses
}

func newCache() *cache {
	return &cache{
		volumes:     make(map[depot.VolumeID]volumeRecord),
		writable:    make(map[scheme]map[depot.VolumeID]struct{}),
		dataservers: make(map[string]dataserverRecord),
		nameservers: make(map[string]nsclient.NameserverInfo),
	}
}

// replace takes over fresh's content (a restored database's).
func (c *cache) replace(fresh *cache) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.volumes, c.writable, c.dataservers, c.nameservers = fresh.volumes, fresh.writable, fresh.dataservers, fresh.nameservers
}

// nameserver returns the record of raft member id.
func (c *cache) nameserver(id string) (nsclient.NameserverInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	info, ok := c.nameservers[id]
	return info, ok
}

// load fills the cache from the database.
func (c *cache) load(tx *bbolt.Tx) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := tx.Bucket(bktDataservers).ForEach(func(k, v []byte) error {
		var rec dataserverRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("dataserver %q: %w", k, err)
		}
		c.putDataserver(rec)
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bktNameservers).ForEach(func(k, v []byte) error {
		var info nsclient.NameserverInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("nameserver %q: %w", k, err)
		}
		c.nameservers[info.ID] = info
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bktVolumes).ForEach(func(k, v []byte) error {
		var rec volumeRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("volume %x: %w", k, err)
		}
		c.putVolume(rec)
		return nil
	})
}

// putVolume and putDataserver are called with c.mu held for writing.
func (c *cache) putVolume(v volumeRecord) {
	c.volumes[v.ID] = v
	sc := scheme{v.K, v.M}
	set := c.writable[sc]
	if v.State == depot.VolumeWritable {
		if set == nil {
			set = make(map[depot.VolumeID]struct{})
			c.writable[sc] = set
		}
		set[v.ID] = struct{}{}
	} else if set != nil {
		delete(set, v.ID)
	}
}

func (c *cache) putDataserver(rec dataserverRecord) { c.dataservers[rec.ID] = rec }

// withAddrs returns a copy of v whose member addresses are the members'
// current HTTP addresses (a dataserver may restart on another address).
// Called with c.mu held.
func (c *cache) withAddrs(v depot.Volume) depot.Volume {
	v.Members = slices.Clone(v.Members)
	for i, m := range v.Members {
		if ds, ok := c.dataservers[m.Node]; ok && ds.Addr != "" {
			v.Members[i].Addr = ds.Addr
		}
	}
	return v
}

// volume returns volume id with current member addresses.
func (c *cache) volume(id depot.VolumeID) (depot.Volume, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.volumes[id]
	if !ok {
		return depot.Volume{}, false
	}
	return c.withAddrs(v.Volume), true
}

// allVolumes returns every volume, by id.
func (c *cache) allVolumes() []depot.Volume {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]depot.Volume, 0, len(c.volumes))
	for _, v := range c.volumes {
		out = append(out, c.withAddrs(v.Volume))
	}
	slices.SortFunc(out, func(a, b depot.Volume) int { return int(a.ID) - int(b.ID) })
	return out
}

// eligible returns the writable volumes of scheme k+m whose members are all
// alive, by id.
func (c *cache) eligible(k, m int) []depot.VolumeID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []depot.VolumeID
next:
	for id := range c.writable[scheme{k, m}] {
		for _, mem := range c.volumes[id].Members {
			if !up(c.dataservers[mem.Node].State) {
				continue next
			}
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// degraded returns the degraded volumes of scheme k+m that were writable
// before a member went down (not full) and still have at least minAlive
// alive members, by id. Assign falls back to them when no healthy volume
// exists and none can be placed, so that writes go on at quorum while a
// dataserver is down.
func (c *cache) degraded(k, m, minAlive int) []depot.VolumeID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []depot.VolumeID
	for id, v := range c.volumes {
		if v.K != k || v.M != m || v.State != depot.VolumeDegraded || v.Full {
			continue
		}
		alive := 0
		for _, mem := range v.Members {
			if up(c.dataservers[mem.Node].State) {
				alive++
			}
		}
		if alive >= minAlive {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// dataserverList returns the dataserver records by id.
func (c *cache) dataserverList() []dataserverRecord {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]dataserverRecord, 0, len(c.dataservers))
	for _, d := range c.dataservers {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b dataserverRecord) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// volumeCounts returns how many volumes each dataserver is a member of.
func (c *cache) volumeCounts() map[string]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := make(map[string]int, len(c.dataservers))
	for _, v := range c.volumes {
		for _, m := range v.Members {
			n[m.Node]++
		}
	}
	return n
}

// volumeStats counts volumes by state, and by scheme and state.
func (c *cache) volumeStats() (total int, byState map[depot.VolumeState]int, bySchemes map[string]map[string]int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	byState = make(map[depot.VolumeState]int)
	bySchemes = make(map[string]map[string]int)
	for _, v := range c.volumes {
		byState[v.State]++
		key := fmt.Sprintf("%d+%d", v.K, v.M)
		if bySchemes[key] == nil {
			bySchemes[key] = make(map[string]int)
		}
		bySchemes[key][string(v.State)]++
	}
	return len(c.volumes), byState, bySchemes
}
