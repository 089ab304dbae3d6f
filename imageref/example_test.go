package imageref_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/coldstart-dev/coldstart/imageref"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// exampleImage is a one-layer image for linux/arch with fixed content.
func exampleImage(arch string) v1.Image {
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		static.NewLayer([]byte("layer for "+arch), types.OCILayer))
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cfg.OS, cfg.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		log.Fatal(err)
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// Write a two-platform index to an OCI layout, then read one platform back.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "imageref-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		adds = append(adds, mutate.IndexAddendum{
			Add:        exampleImage(arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)

	dst, err := imageref.Parse("oci:" + dir + ":v1")
	if err != nil {
		log.Fatal(err)
	}
	if err := imageref.Write(ctx, dst, &imageref.Artifact{Index: idx}); err != nil {
		log.Fatal(err)
	}

	all, err := imageref.Read(ctx, dst)
	if err != nil {
		log.Fatal(err)
	}
	d, err := all.Digest()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index:", d)

	arm, err := imageref.ParsePlatforms("linux/arm64")
	if err != nil {
		log.Fatal(err)
	}
	one, err := imageref.Read(ctx, dst, imageref.WithPlatforms(arm))
	if err != nil {
		log.Fatal(err)
	}
	desc, err := one.Descriptor()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(desc.Platform, "image:", desc.Digest)
	// Output:
	// index: sha256:13f96259a2313a9c25928d9bdf7308be7585c1f2251ea4afdbfe948d204a875d
	// linux/arm64 image: sha256:41f3a8069d57e3d38e5bd13bf7b54b4401f61b2d752883c31a088e72521fff4f
}
