// Package images holds the recipes of the benchmark images: one directory per
// image, each with a recipe.json (base, build steps, image config, ready
// condition) and the files its copy steps add. The recipes are embedded so
// that the builder (package benchmarks/build) works from any directory and
// its cache key covers exactly what it builds.
package images

import "embed"

// FS is the recipe tree: NAME/recipe.json and NAME/... for every image.
//
//go:embed all:python all:node all:jvm all:shell all:messy
var FS embed.FS
