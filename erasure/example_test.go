package erasure_test

import (
	"bytes"
	"fmt"
	"io"

	"depot/erasure"
)

// The layout of doc.go's examples.
func ExampleCodec_ShardSize() {
	c, err := erasure.New(4, 2, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.ShardSize(0), c.ShardSize(10<<10), c.ShardSize(9<<20+5))
	fmt.Println(c.Map(9<<20+5, 5000000, 1))
	// Output:
	// 0 2560 2359298
	// [{0 1854272 1}]
}

func ExampleEncoder() {
	c, err := erasure.New(4, 2, 0)
	if err != nil {
		panic(err)
	}
	enc := c.NewEncoder(bytes.NewReader(make([]byte, 10<<10)))
	for {
		shards, err := enc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		// Send shards[i] to the dataserver holding shard i.
		fmt.Println(len(shards), "shards of", len(shards[0]), "bytes")
	}
	fmt.Println(enc.Size(), "bytes encoded")
	// Output:
	// 6 shards of 2560 bytes
	// 10240 bytes encoded
}
