package nameserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// Repair scheduling. The nameserver decides what to repair and records it;
// the bytes are moved by the repair workers that run in the dataservers
// (package repair). See doc.go, "Repair".

// Repair commands; applyRepair applies them.
const (
	CmdRepairStart    CommandType = "repair_start"    // repairStartCmd
	CmdRepairProgress CommandType = "repair_progress" // nsclient.RepairProgress
	CmdRepaired       CommandType = "repaired"        // nsclient.RepairedList
	CmdRepairCancel   CommandType = "repair_cancel"   // repairCancelCmd
)

// repairCancelCmd cancels the rebuild of shard Index of Volume from From
// to To: From is back and still holds its copy (cancelReturned).
type repairCancelCmd struct {
	Volume depot.VolumeID `json:"volume"`
	Index  int            `json:"index"`
	From   string         `json:"from"`
	To     string         `json:"to"`
}

// bktRepairs holds the repair jobs: uint32 volume id, uint16 shard index →
// JSON nsclient.RepairJob. It is created by the first job.
var bktRepairs = []byte("repairs")

func repairKey(vol depot.VolumeID, idx int) []byte {
	return binary.BigEndian.AppendUint16(u32(uint32(vol)), uint16(idx))
}

// repairStartCmd starts (or moves to another target) repair jobs.
type repairStartCmd struct {
	Jobs []nsclient.RepairJob `json:"jobs"`
}

// applyRepair applies the repair commands; ok is false for other types.
func (s *store) applyRepair(tx *bbolt.Tx, cmd Command) (res any, ok bool, err error) {
	switch cmd.Type {
	case CmdRepairStart:
		var c repairStartCmd
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, s.applyRepairStart(tx, cmd, c)
	case CmdRepairProgress:
		var c nsclient.RepairProgress
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, s.applyRepairProgress(tx, cmd, c)
	case CmdRepaired:
		var c nsclient.RepairedList
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, applyRepaired(tx, c)
	case CmdRepairCancel:
		var c repairCancelCmd
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, s.applyRepairCancel(tx, c)
	}
	return nil, false, nil
}

func (s *store) applyRepairStart(tx *bbolt.Tx, cmd Command, c repairStartCmd) error {
	// Check every job before the first write.
	vols := make(map[depot.VolumeID]volumeRecord)
	for _, j := range c.Jobs {
		v, ok := vols[j.Volume]
		if !ok {
			var err error
			if v, err = getVolume(tx, j.Volume); err != nil {
				return err
			}
		}
		if j.Index < 0 || j.Index >= len(v.Members) || v.Members[j.Index].Node != j.From || j.To == "" {
			return fmt.Errorf("%w: repair job %d/%d from %s to %s does not match the volume", depot.ErrBadRequest,
				j.Volume, j.Index, j.From, j.To)
		}
		vols[j.Volume] = v
	}
	b, err := tx.CreateBucketIfNotExists(bktRepairs)
	if err != nil {
		return &storageError{err}
	}
	for _, j := range c.Jobs {
		j.Started, j.Updated = cmd.Time, cmd.Time
		j.Cursor, j.Needles, j.Bytes, j.Total = 0, 0, 0, 0
		if err := putJSON(b, repairKey(j.Volume, j.Index), j); err != nil {
			return err
		}
	}
	var changed []volumeRecord
	for _, v := range vols {
		if v.State != depot.VolumeRepairing {
			v.State = depot.VolumeRepairing
			if err := putJSON(tx.Bucket(bktVolumes), u32(uint32(v.ID)), v); err != nil {
				return err
			}
			changed = append(changed, v)
		}
	}
	s.afterCommit(func(c *cache) {
		for _, v := range changed {
			c.putVolume(v)
		}
	})
	return nil
}

func (s *store) applyRepairProgress(tx *bbolt.Tx, cmd Command, p nsclient.RepairProgress) error {
	b := tx.Bucket(bktRepairs)
	key := repairKey(p.Volume, p.Index)
	var j nsclient.RepairJob
	if b == nil || b.Get(key) == nil || json.Unmarshal(b.Get(key), &j) != nil || j.To != p.To {
		return fmt.Errorf("repair job %d/%d to %s: %w", p.Volume, p.Index, p.To, depot.ErrNotFound)
	}
	if p.Error != "" {
		j.Failures = max(j.Failures, p.Failures) // a replay counts once
		j.Error, j.Updated = p.Error, cmd.Time
		return putJSON(b, key, j)
	}
	if !p.Done {
		if p.Cursor != j.Cursor || p.Needles != j.Needles {
			j.Failures, j.Error = 0, "" // moving again
		}
		j.Cursor, j.Needles, j.Bytes, j.Total, j.Updated = p.Cursor, p.Needles, p.Bytes, p.Total, cmd.Time
		j.Skipped = p.Skipped
		return putJSON(b, key, j)
	}
	v, err := getVolume(tx, p.Volume)
	if err != nil {
		return err
	}
	if p.Index >= len(v.Members) {
		return fmt.Errorf("%w: shard %d of volume %d", depot.ErrBadRequest, p.Index, p.Volume)
	}
	// The switch: the rebuilt copy on To replaces From's.
	var to dataserverRecord
	if raw := tx.Bucket(bktDataservers).Get([]byte(j.To)); raw != nil {
		json.Unmarshal(raw, &to)
	}
	old := v.Members[p.Index].Node
	v.Members = slices.Clone(v.Members)
	v.Members[p.Index] = depot.Member{Index: p.Index, Node: j.To, Addr: to.Addr}
	ix := tx.Bucket(bktNodeVols)
	if !slices.ContainsFunc(v.Members, func(m depot.Member) bool { return m.Node == old }) {
		if err := del(ix, nodeVolKey(old, v.ID)); err != nil {
			return err
		}
	}
	if err := put(ix, nodeVolKey(j.To, v.ID), nil); err != nil {
		return err
	}
	if err := del(b, key); err != nil {
		return err
	}
	if j.Move {
		if err := moveSwitched(tx, cmd, j, old, p.Bytes); err != nil {
			return err
		}
	}
	return s.jobEnded(tx, b, v)
}

// jobEnded sets the state of v once one of its jobs ended (b is the jobs
// bucket, without it): still repairing while another slot is being
// rebuilt, degraded while a member is down.
func (s *store) jobEnded(tx *bbolt.Tx, b *bbolt.Bucket, v volumeRecord) error {
	others := false
	prefix := u32(uint32(v.ID))
	cur := b.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		others = true
	}
	switch {
	case others:
		v.State = depot.VolumeRepairing
	case anyMemberDown(tx, v.Volume):
		v.State = depot.VolumeDegraded
	case v.Full:
		v.State = depot.VolumeFull
	default:
		v.State = depot.VolumeWritable
	}
	if err := putJSON(tx.Bucket(bktVolumes), u32(uint32(v.ID)), v); err != nil {
		return err
	}
	s.afterCommit(func(c *cache) { c.putVolume(v) })
	return nil
}

// applyRepairCancel drops the rebuild job c names if it is still the one
// under way (a replay, or a job done or moved meanwhile, changes nothing).
// From stays the member: its writes missed while it was down are recorded
// missed writes, which needle-level repair catches up; the target drops
// its partial copy (repair.Worker, dropCancelled).
func (s *store) applyRepairCancel(tx *bbolt.Tx, c repairCancelCmd) error {
	b := tx.Bucket(bktRepairs)
	key := repairKey(c.Volume, c.Index)
	var j nsclient.RepairJob
	if b == nil || b.Get(key) == nil || json.Unmarshal(b.Get(key), &j) != nil || j.To != c.To || j.From != c.From || j.Move {
		return nil
	}
	v, err := getVolume(tx, c.Volume)
	if err != nil {
		return err
	}
	if c.Index >= len(v.Members) || v.Members[c.Index].Node != c.From {
		return nil
	}
	if err := del(b, key); err != nil {
		return err
	}
	return s.jobEnded(tx, b, v)
}

func applyRepaired(tx *bbolt.Tx, c nsclient.RepairedList) error {
	b := tx.Bucket(bktMissed)
	for _, r := range c.Repaired {
		key := []byte(r.Fid)
		raw := b.Get(key)
		if raw == nil {
			continue
		}
		var rec nsclient.MissedWrite
		if err := json.Unmarshal(raw, &rec); err != nil {
			if err := del(b, key); err != nil {
				return err
			}
			continue
		}
		rec.Shards = slices.DeleteFunc(rec.Shards, func(i int) bool { return slices.Contains(r.Shards, i) })
		var err error
		if len(rec.Shards) == 0 {
			err = del(b, key)
		} else {
			err = putJSON(b, key, rec)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// repairJobs returns every repair job, by volume and index.
func (s *Server) repairJobs() ([]nsclient.RepairJob, error) {
	var out []nsclient.RepairJob
	err := s.store.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktRepairs)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var j nsclient.RepairJob
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("repair job %x: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// repairLoop schedules repairs and works through the delete queue every
// RepairInterval until ctx ends.
func (s *Server) repairLoop(ctx context.Context) {
	started := time.Now()
	// A nameserver that leads again registers again: that is no failure.
	var already prometheus.AlreadyRegisteredError
	if err := s.metrics.reg.Register(repairCollector{s}); err != nil && !errors.As(err, &already) {
		s.log.Warn("repair metrics", "err", err)
	}
	hc := s.httpClient(30 * time.Second)
	t := time.NewTicker(s.cfg.RepairInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.scheduleRepairs(ctx, started, hc); err != nil && ctx.Err() == nil {
			s.log.Warn("repair scheduling", "err", err)
		}
		if err := s.processDeletes(ctx, hc); err != nil && ctx.Err() == nil {
			s.log.Warn("delete queue", "err", err)
		}
	}
}

// scheduleRepairs starts a repair job for every shard slot whose member
// has been down (dead, left or unheard of) for RepairAfter, and moves jobs
// whose target has been down as long to another dataserver. Down time is
// counted from the later of the state change and this nameserver's start,
// so that a restarted nameserver, whose records may be stale, waits for
// gossip before it decides anything.
func (s *Server) scheduleRepairs(ctx context.Context, started time.Time, hc *http.Client) error {
	if err := s.cancelReturned(ctx, hc); err != nil && ctx.Err() == nil {
		s.log.Warn("repair: cancelling rebuilds of returned members", "err", err) // scheduling goes on
	}
	now := time.Now()
	c := s.store.cache
	lost := make(map[string]bool)
	for _, d := range c.dataserverList() {
		if d.State == stateAlive || d.State == "suspect" {
			continue
		}
		if now.Sub(later(d.Since, started)) >= s.cfg.RepairAfter {
			lost[d.ID] = true
		}
	}
	if len(lost) == 0 {
		return nil
	}
	jobs, err := s.repairJobs()
	if err != nil {
		return err
	}
	byKey := make(map[nsclient.ShardRef]nsclient.RepairJob, len(jobs))
	for _, j := range jobs {
		byKey[nsclient.ShardRef{Volume: j.Volume, Index: j.Index}] = j
	}
	cands := s.candidates()
	var start []nsclient.RepairJob
	for _, v := range s.Volumes() {
		for _, m := range v.Members {
			if !lost[m.Node] {
				continue
			}
			ref := nsclient.ShardRef{Volume: v.ID, Index: m.Index}
			if j, ok := byKey[ref]; ok && !lost[j.To] {
				continue // under way
			}
			to, ok := replacement(v, byKey, cands)
			if !ok {
				s.log.Debug("no dataserver to rebuild on", "volume", v.ID, "index", m.Index)
				continue
			}
			j := nsclient.RepairJob{Volume: v.ID, Index: m.Index, From: m.Node, To: to.ID}
			byKey[ref] = j
			start = append(start, j)
			for i := range cands {
				if cands[i].ID == to.ID {
					cands[i].Volumes++
				}
			}
		}
	}
	if len(start) == 0 {
		return nil
	}
	for chunk := range slices.Chunk(start, 256) {
		if _, err := s.store.propose(ctx, CmdRepairStart, repairStartCmd{Jobs: chunk}); err != nil {
			return err
		}
	}
	s.log.Info("repair jobs started", "jobs", len(start))
	return nil
}

// cancelReturned cancels the rebuilds whose lost member is alive again
// with its copy of the slot. Finishing them would spend a whole shard's
// rebuild on bytes the member still has, and switch the slot to a copy
// that lacks what the member took meanwhile; the writes it missed while
// down are recorded missed writes, caught up needle by needle within
// seconds of its return (repair.Worker.Rejoined). A member that came back
// without its copy (a new disk; a file holding only the missed writes
// repaired since) keeps its rebuild: its copy must hold at least half the
// live bytes of another member's (a volume's shards are of one size).
// Whatever a finished rebuild misses is caught up after the switch
// (repair.Worker afterSwitch).
func (s *Server) cancelReturned(ctx context.Context, hc *http.Client) error {
	jobs, err := s.repairJobs()
	if err != nil {
		return err
	}
	c := s.store.cache
	files := make(map[string]map[nsclient.ShardRef]int64) // node → slot → live bytes, asked once per pass
	liveBytes := func(node string, ref nsclient.ShardRef) (int64, bool) {
		d, ok := c.dataserver(node)
		if !ok || d.State != stateAlive {
			return 0, false
		}
		held, asked := files[node]
		if !asked {
			list, err := s.shardFiles(ctx, hc, d.Addr)
			if err != nil {
				s.log.Debug("repair: dataserver status", "node", node, "err", err)
			}
			held = make(map[nsclient.ShardRef]int64, len(list))
			for _, f := range list {
				held[nsclient.ShardRef{Volume: f.Volume, Index: f.Index}] = f.LiveBytes
			}
			files[node] = held
		}
		n, ok := held[ref]
		return n, ok
	}
	var errs []error
	for _, j := range jobs {
		if j.Move {
			continue // a move's source is alive by design
		}
		mine, ok := liveBytes(j.From, nsclient.ShardRef{Volume: j.Volume, Index: j.Index})
		if !ok {
			continue
		}
		v, ok := c.volume(j.Volume)
		if !ok {
			continue
		}
		var theirs int64
		for _, m := range v.Members {
			if m.Index != j.Index {
				if n, ok := liveBytes(m.Node, nsclient.ShardRef{Volume: v.ID, Index: m.Index}); ok {
					theirs = max(theirs, n)
				}
			}
		}
		if mine < theirs/2 {
			continue
		}
		cmd := repairCancelCmd{Volume: j.Volume, Index: j.Index, From: j.From, To: j.To}
		if _, err := s.store.propose(ctx, CmdRepairCancel, cmd); err != nil {
			errs = append(errs, fmt.Errorf("cancel repair %d/%d: %w", j.Volume, j.Index, err))
			continue
		}
		s.log.Info("repair cancelled: the lost member is back with its copy", "volume", j.Volume, "index", j.Index,
			"from", j.From, "to", j.To, "cursor", j.Cursor)
	}
	return errors.Join(errs...)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// replacement chooses the dataserver to rebuild a shard of v on: an alive
// one that holds no shard of v and is no target of another job of v,
// preferring a rack that v's other members do not use, then the best
// candidate (free space per volume).
func replacement(v depot.Volume, jobs map[nsclient.ShardRef]nsclient.RepairJob, cands []candidate) (candidate, bool) {
	taken := make(map[string]bool)
	for _, m := range v.Members {
		taken[m.Node] = true
	}
	for i := range v.Members {
		if j, ok := jobs[nsclient.ShardRef{Volume: v.ID, Index: i}]; ok {
			taken[j.To] = true
		}
	}
	racks := make(map[string]bool)
	for _, c := range cands {
		if taken[c.ID] && c.Rack != "" {
			racks[c.Rack] = true
		}
	}
	var best candidate
	found, bestNewRack := false, false
	for _, c := range cands {
		if taken[c.ID] {
			continue
		}
		newRack := c.Rack != "" && !racks[c.Rack]
		if !found || (newRack && !bestNewRack) || (newRack == bestNewRack && better(c, best) < 0) {
			best, found, bestNewRack = c, true, newRack
		}
	}
	return best, found
}

// processDeletes deletes the needles of queued segments older than
// DeleteGrace from every member of their volume, and acknowledges the
// entries whose members all answered. Within ReadHoldMax past the grace
// it deletes only idle needles (DELETE ?ifidle=1): a member serving or
// holding the needle for a reader answers 423 InUse and the entry stays
// queued for the next pass. It checks the refs index first: an
// entry whose segment is referenced is acknowledged without deleting
// anything. An entry with a member down stays
// queued until the member is back or replaced. No object bytes move: these
// are DELETE requests.
func (s *Server) processDeletes(ctx context.Context, hc *http.Client) error {
	// Entries that stay (a member down, a reader's hold) must not keep the
	// ones behind them waiting: the pass goes on page by page past them,
	// up to deletePages pages.
	var after uint64
	for range deletePages {
		next, more, err := s.processDeletePage(ctx, hc, after)
		if err != nil || !more {
			return err
		}
		after = next
	}
	return nil
}

// deletePages bounds the pages of deleteBatch entries one pass of the
// delete queue works through.
const (
	deletePages = 8
	deleteBatch = 512
)

// processDeletePage works through the deleteBatch entries of the delete
// queue after sequence number after. more reports whether entries past
// the page may be due too; next is the page's last sequence number.
func (s *Server) processDeletePage(ctx context.Context, hc *http.Client, after uint64) (next uint64, more bool, err error) {
	list, err := s.pendingDeletesAfter(ctx, after, deleteBatch)
	if err != nil {
		return 0, false, err
	}
	if len(list) == 0 {
		return 0, false, nil
	}
	next = list[len(list)-1].Seq
	more = len(list) == deleteBatch && time.Since(list[len(list)-1].Queued) >= s.cfg.DeleteGrace
	live, err := s.referencedDeletes(ctx, list)
	if err != nil {
		return 0, false, err
	}
	now := time.Now()
	c := s.store.cache
	var (
		mu   sync.Mutex
		done []uint64
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, pd := range list {
		if now.Sub(pd.Queued) < s.cfg.DeleteGrace {
			break // the queue is in order
		}
		if live[pd.Seq] {
			// Something references the segment again (or still): its
			// needles are live data. The entry goes, the needles stay;
			// whoever releases the segment later queues it anew.
			s.log.Warn("queued segment is referenced: not deleted", "fid", pd.Fid, "seq", pd.Seq)
			s.metrics.keptDeletes.Inc()
			done = append(done, pd.Seq)
			continue
		}
		fid, err := depot.ParseFid(pd.Fid)
		if err != nil {
			done = append(done, pd.Seq) // nothing to delete
			continue
		}
		v, ok := c.volume(fid.Volume)
		if !ok {
			done = append(done, pd.Seq)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ifIdle := now.Sub(pd.Queued) < s.cfg.DeleteGrace+s.cfg.ReadHoldMax
			if s.deleteNeedle(ctx, hc, v, fid, ifIdle) {
				mu.Lock()
				done = append(done, pd.Seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(done) == 0 {
		return next, more, nil
	}
	return next, more, s.AckDeletes(ctx, done)
}

// deleteNeedle deletes fid's shard from every member; it reports whether
// every member answered that the needle is gone. With ifIdle, it asks
// for idle needles only and stops at the first member that answers 423
// InUse, so that a reader keeps the needle's other shards (parity it may
// need for a degraded read) as well.
func (s *Server) deleteNeedle(ctx context.Context, hc *http.Client, v depot.Volume, fid depot.Fid, ifIdle bool) bool {
	ok := true
	for _, m := range v.Members {
		if ds, found := s.store.cache.dataserver(m.Node); !found || ds.State != stateAlive {
			return false
		}
		url := s.cfg.TLS.URL(m.Addr) + "/shard/" + strconv.FormatUint(uint64(fid.Volume), 10) + "/" +
			strconv.Itoa(m.Index) + "/" + strconv.FormatUint(uint64(fid.Needle), 16) +
			"?cookie=" + fmt.Sprintf("%08x", uint32(fid.Cookie))
		if ifIdle {
			url += "&ifidle=1"
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodDelete, url, nil)
		if err != nil {
			cancel()
			return false
		}
		s.cfg.Key.Sign(req)
		resp, err := hc.Do(req)
		if err != nil {
			cancel()
			ok = false
			continue
		}
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusLocked {
			return false // a reader holds it: the entry waits
		}
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
			ok = false
		}
	}
	return ok
}

// RepairTasks returns the repair work of dataserver node: the jobs that
// target it, the missed or corrupt needles of the shards it holds (up to
// limit records), the volumes they name and every shard slot it holds.
func (s *Server) RepairTasks(ctx context.Context, node string, limit int) (nsclient.RepairTasks, error) {
	t := nsclient.RepairTasks{Jobs: []nsclient.RepairJob{}, Missed: []nsclient.MissedWrite{}, Holds: []nsclient.ShardRef{}}
	jobs, err := s.repairJobs()
	if err != nil {
		return t, err
	}
	need := make(map[depot.VolumeID]bool)
	for _, j := range jobs {
		if j.To == node {
			t.Jobs = append(t.Jobs, j)
			need[j.Volume] = true
		}
	}
	c := s.store.cache
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		t.Restored = getU64(tx.Bucket(bktMeta), keyRestored)
		ids, _ := volumesOf(tx, node)
		for _, id := range ids {
			v, ok := c.volume(id)
			if !ok {
				continue
			}
			for _, m := range v.Members {
				if m.Node == node {
					t.Holds = append(t.Holds, nsclient.ShardRef{Volume: id, Index: m.Index})
				}
			}
		}
		cur := tx.Bucket(bktMissed).Cursor()
		for k, raw := cur.First(); k != nil && len(t.Missed) < limit; k, raw = cur.Next() {
			var mw nsclient.MissedWrite
			if json.Unmarshal(raw, &mw) != nil {
				continue
			}
			fid, err := depot.ParseFid(mw.Fid)
			if err != nil {
				continue
			}
			v, ok := c.volume(fid.Volume)
			if !ok {
				continue
			}
			var mine []int
			for _, i := range mw.Shards {
				if i < len(v.Members) && v.Members[i].Node == node {
					mine = append(mine, i)
				}
			}
			if len(mine) > 0 {
				mw.Shards = mine
				t.Missed = append(t.Missed, mw)
				need[fid.Volume] = true
			}
		}
		return nil
	})
	for id := range need {
		if v, ok := c.volume(id); ok {
			t.Volumes = append(t.Volumes, v)
		}
	}
	if err == nil {
		err = s.moveTasks(node, &t)
	}
	return t, err
}

// RepairProgress records a job's progress; p.Done switches the volume's
// member list to the rebuilt copy. It fails with depot.ErrNotFound when
// the job does not exist or targets another dataserver.
func (s *Server) RepairProgress(ctx context.Context, p nsclient.RepairProgress) error {
	_, err := s.store.propose(ctx, CmdRepairProgress, p)
	if err == nil && p.Done {
		s.log.Info("repair done: member switched", "volume", p.Volume, "index", p.Index, "to", p.To,
			"needles", p.Needles, "bytes", p.Bytes)
	}
	return err
}

// Repaired removes repaired shards from the missed records.
func (s *Server) Repaired(ctx context.Context, list []nsclient.MissedWrite) error {
	_, err := s.store.propose(ctx, CmdRepaired, nsclient.RepairedList{Repaired: list})
	return err
}

// RepairStatus summarises the repair jobs and the needle-level backlog.
func (s *Server) RepairStatus(ctx context.Context) (nsclient.RepairStatus, error) {
	st := nsclient.RepairStatus{Jobs: []nsclient.RepairJob{}}
	jobs, err := s.repairJobs()
	if err != nil {
		return st, err
	}
	st.Jobs = append(st.Jobs, jobs...)
	var elapsed float64
	now := time.Now()
	for _, j := range jobs {
		st.Bytes += j.Bytes
		st.Total += max(j.Total, j.Bytes)
		elapsed += now.Sub(j.Started).Seconds()
	}
	if elapsed > 0 && len(jobs) > 0 {
		// Jobs run side by side: the rate is the sum of theirs.
		st.Rate = float64(st.Bytes) / (elapsed / float64(len(jobs)))
	}
	if st.Rate > 0 {
		st.ETA = time.Duration(float64(st.Total-st.Bytes) / st.Rate * float64(time.Second))
	}
	_, byState, _ := s.store.cache.volumeStats()
	st.Degraded = byState[depot.VolumeDegraded] + byState[depot.VolumeRepairing]
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktMissed).ForEach(func(_, raw []byte) error {
			var mw nsclient.MissedWrite
			if json.Unmarshal(raw, &mw) == nil {
				st.Missed += len(mw.Shards)
			}
			return nil
		})
	})
	return st, err
}

// routeRepair registers the repair API. Its requests are background
// traffic of the dataservers' workers, counted apart from the client-facing
// ones: depot_nameserver_repair_requests_total{route,code}.
func (s *Server) routeRepair(api *http.ServeMux) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "depot_nameserver_repair_requests_total", Help: "Repair API requests, by route and status code.",
	}, []string{"route", "code"})
	if err := s.metrics.reg.Register(requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			requests = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	route := func(pattern string, h http.HandlerFunc) {
		api.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			h(sw, r)
			requests.WithLabelValues(pattern, strconv.Itoa(sw.status)).Inc()
		})
	}
	route("GET /repair/tasks", func(w http.ResponseWriter, r *http.Request) {
		node := r.URL.Query().Get("node")
		if node == "" {
			httpx.WriteError(w, fmt.Errorf("%w: missing ?node=", depot.ErrBadRequest))
			return
		}
		t, err := s.RepairTasks(r.Context(), node, 1000)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, t)
	})
	route("POST /repair/progress", func(w http.ResponseWriter, r *http.Request) {
		var p nsclient.RepairProgress
		if err := readJSON(w, r, maxSmallBody, &p); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := s.RepairProgress(r.Context(), p); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	route("POST /repair/repaired", func(w http.ResponseWriter, r *http.Request) {
		var l nsclient.RepairedList
		if err := readJSON(w, r, maxObjectBody, &l); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := s.Repaired(r.Context(), l.Repaired); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	route("GET /repair/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.RepairStatus(r.Context())
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, st)
	})
	s.routeRebalance(api)
}

// repairCollector exports the health of the cluster as gauges, computed at
// scrape time: volumes by state, gossip members by role and state, repair
// jobs and their bytes, the needle-level repair queue and the delete queue.
type repairCollector struct{ s *Server }

var (
	descVolumes = prometheus.NewDesc("depot_volumes", "Volumes by state.", []string{"state"}, nil)
	descDegr    = prometheus.NewDesc("depot_volumes_degraded", "Volumes with a member down or being rebuilt.", nil, nil)
	descMembers = prometheus.NewDesc("depot_gossip_members", "Gossip members by role and state.", []string{"role", "state"}, nil)
	descJobs    = prometheus.NewDesc("depot_repair_jobs", "Shard rebuilds under way.", nil, nil)
	descRBytes  = prometheus.NewDesc("depot_repair_bytes", "Shard bytes rebuilt by the jobs under way.", nil, nil)
	descRTotal  = prometheus.NewDesc("depot_repair_bytes_total_estimate", "Shard bytes the jobs under way rebuild in all.", nil, nil)
	descMissed  = prometheus.NewDesc("depot_repair_queue_shards", "Needle shards awaiting needle-level repair.", nil, nil)
	descDeletes = prometheus.NewDesc("depot_delete_queue", "Segments queued for deletion.", nil, nil)
)

func (c repairCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVolumes, descDegr, descMembers, descJobs, descRBytes, descRTotal, descMissed, descDeletes} {
		ch <- d
	}
}

func (c repairCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	_, byState, _ := s.store.cache.volumeStats()
	for _, st := range []depot.VolumeState{depot.VolumeWritable, depot.VolumeFull, depot.VolumeDegraded, depot.VolumeRepairing} {
		ch <- prometheus.MustNewConstMetric(descVolumes, prometheus.GaugeValue, float64(byState[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descDegr, prometheus.GaugeValue,
		float64(byState[depot.VolumeDegraded]+byState[depot.VolumeRepairing]))
	members := make(map[[2]string]int)
	for _, n := range s.cfg.Members.Members() {
		for _, st := range []string{stateAlive, stateSuspect, stateDead, stateLeft} {
			members[[2]string{n.Meta.Role, st}] += 0 // zero series, not none
		}
		members[[2]string{n.Meta.Role, n.State}]++
	}
	for k, n := range members {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := s.RepairStatus(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(len(st.Jobs)))
		ch <- prometheus.MustNewConstMetric(descRBytes, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(descRTotal, prometheus.GaugeValue, float64(st.Total))
		ch <- prometheus.MustNewConstMetric(descMissed, prometheus.GaugeValue, float64(st.Missed))
	}
	s.store.db.View(func(tx *bbolt.Tx) error {
		ch <- prometheus.MustNewConstMetric(descDeletes, prometheus.GaugeValue, float64(tx.Bucket(bktDeletes).Stats().KeyN))
		return nil
	})
}

// dataserver returns the record of dataserver id.
func (c *cache) dataserver(id string) (dataserverRecord, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.dataservers[id]
	return d, ok
}
