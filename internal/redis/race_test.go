//go:build race

package redis_test

// raceBuild: the tests run the race-built binary (nwtest), several times
// slower: the workload is smaller.
const raceBuild = true
