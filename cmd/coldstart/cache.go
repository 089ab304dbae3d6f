package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/spf13/cobra"
)

func newCache(g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "cache",
		Short: "List, measure and prune the conversion cache",
		Long:  cacheLong,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.Join(errUsage, fmt.Errorf("unknown command %q for \"coldstart cache\": use ls, du or prune", args[0]))
			}
			return cmd.Help()
		},
	}
	c.PersistentFlags().StringVar(&dir, "cache-dir", "", "cache directory (default $XDG_CACHE_HOME/coldstart or ~/.cache/coldstart)")
	open := func() (*cache.Dir, error) { return openCacheDir(g, dir) }

	var format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List cache entries: key, size, last use, digest, and the image and layer each came from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return errors.Join(errUsage, fmt.Errorf("unknown format %q: use text or json", format))
			}
			d, err := open()
			if err != nil {
				return err
			}
			es, err := d.List(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if es == nil {
					es = []cache.EntryInfo{}
				}
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(es)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSIZE\tLAST USED (UTC)\tDIGEST\tFROM")
			for _, e := range es {
				from := "-"
				if e.From != nil {
					from = e.From.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Key, units.Bytes(e.Size), e.LastUsed.UTC().Format(time.DateTime), shortDigest(e.Digest.String()), from)
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&format, "format", "text", "output format: text or json")

	du := &cobra.Command{
		Use:   "du",
		Short: "Show how much disk the cache uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := open()
			if err != nil {
				return err
			}
			n, err := d.Usage(cmd.Context())
			if err != nil {
				return err
			}
			es, err := d.List(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "%s (%d bytes) in %d %s: %s\n", units.Bytes(n), n, len(es), plural(len(es), "entry", "entries"), d.Path())
			return err
		},
	}

	var maxSize string
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Evict least recently used entries down to --cache-max-size",
		Long:  pruneLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, err := units.ParseBytes(maxSize)
			if err != nil {
				return usageErr("--cache-max-size: %v", err)
			}
			d, err := open()
			if err != nil {
				return err
			}
			removed, freed, err := d.Prune(cmd.Context(), limit)
			if err != nil {
				return err
			}
			n, err := d.Usage(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "removed %d %s, freed %s; %s left\n", removed, plural(removed, "entry", "entries"), units.Bytes(freed), units.Bytes(n))
			return err
		},
	}
	prune.Flags().StringVar(&maxSize, "cache-max-size", units.Bytes(cache.DefaultMaxSize), "size to prune down to, e.g. 10GiB, 500MB or 0")
	prune.Flags().StringVar(&maxSize, "max-size", units.Bytes(cache.DefaultMaxSize), "same as --cache-max-size")
	_ = prune.Flags().MarkDeprecated("max-size", "use --cache-max-size, as optimize does")

	c.AddCommand(ls, du, prune)
	return c
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
