package erasure

import "fmt"

// Rebuild computes shard want of a needle from at least k other shards.
// It is RebuildInto with no buffer.
// shards has k+m entries, one per shard index: the whole bytes of every
// shard at hand (the layout makes a shard one Reed-Solomon codeword per
// byte column, so whole shards rebuild column by column whatever the
// object's size) and nil for the ones missing. Every present shard must
// have the same length. It returns the rebuilt shard; shards is left as it
// was. Repair uses it to recreate a lost shard file needle by needle.
func (c *Codec) Rebuild(shards [][]byte, want int) ([]byte, error) {
	return c.RebuildInto(nil, shards, want)
}

// RebuildInto is Rebuild writing the rebuilt shard into dst's storage when
// its capacity suffices (a new slice otherwise), so that a caller
// rebuilding many needles can reuse one buffer.
func (c *Codec) RebuildInto(dst []byte, shards [][]byte, want int) ([]byte, error) {
	if len(shards) != c.k+c.m {
		return nil, fmt.Errorf("%w: %d shards for %d+%d", ErrConfig, len(shards), c.k, c.m)
	}
	if want < 0 || want >= len(shards) {
		return nil, fmt.Errorf("%w: shard %d of %d", ErrConfig, want, len(shards))
	}
	size, have := -1, 0
	work := make([][]byte, len(shards))
	for i, s := range shards {
		if s == nil || i == want {
			continue
		}
		if size >= 0 && len(s) != size {
			return nil, fmt.Errorf("%w: shard %d holds %d bytes, others %d", ErrTooFewShards, i, len(s), size)
		}
		size = len(s)
		if have < c.k {
			work[i] = s
			have++
		}
	}
	if have < c.k {
		return nil, fmt.Errorf("%w: %d of the %d shards needed", ErrTooFewShards, have, c.k)
	}
	if size == 0 {
		return []byte{}, nil
	}
	work[want] = dst[:0]
	required := make([]bool, len(shards))
	required[want] = true
	if err := c.rs.ReconstructSome(work, required); err != nil {
		return nil, fmt.Errorf("erasure: rebuild shard %d: %w", want, err)
	}
	return work[want], nil
}
