//go:build !race

package redis_test

const raceBuild = false
