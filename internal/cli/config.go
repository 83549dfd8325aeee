package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ConfigFlag is the persistent flag naming an optional YAML config file.
const ConfigFlag = "config"

// AddConfigFlag registers --config on cmd's persistent flags.
func AddConfigFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().String(ConfigFlag, "", "optional YAML file whose keys are flag names (flags and environment win)")
}

// ApplyConfig fills every flag of cmd that was not set on the command line,
// first from the environment, then from the YAML file named by --config.
// An environment variable is envPrefix + the flag name upper-cased with
// dashes as underscores (TIDEMARK_CAPTURE_NATS_URL for --nats-url); aliases
// map extra variable names (the standard NATS_URL, NATS_CREDS) to flags.
// Precedence: command line > environment > file > default.
func ApplyConfig(cmd *cobra.Command, envPrefix string, aliases map[string]string) error {
	fromFile := koanf.New(".")
	if path, _ := cmd.Flags().GetString(ConfigFlag); path != "" {
		if err := fromFile.Load(file.Provider(path), yaml.Parser()); err != nil {
			return Usage(fmt.Errorf("read config file %s: %w", path, err), "check that the file exists and is valid YAML")
		}
	}
	fromEnv := koanf.New("\x00")
	err := fromEnv.Load(env.Provider("\x00", env.Opt{
		Prefix: envPrefix,
		TransformFunc: func(k, v string) (string, any) {
			return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, envPrefix)), "_", "-"), v
		},
	}), nil)
	if err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	for envName, flagName := range aliases {
		if v, ok := os.LookupEnv(envName); ok && !fromEnv.Exists(flagName) {
			_ = fromEnv.Set(flagName, v)
		}
	}
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || f.Name == ConfigFlag {
			return
		}
		var source, val string
		switch {
		case fromEnv.Exists(f.Name):
			source, val = "environment", fromEnv.String(f.Name)
		case fromFile.Exists(f.Name):
			source = "config file"
			if s := fromFile.Strings(f.Name); len(s) > 0 && f.Value.Type() != "string" {
				val = strings.Join(s, ",")
			} else {
				val = fromFile.String(f.Name)
			}
		default:
			return
		}
		if err := f.Value.Set(val); err != nil {
			// The value may be a secret: name the flag, not the value.
			firstErr = Usage(fmt.Errorf("invalid value for %s from %s: %v", f.Name, source, errorWithoutValue(err, val)), "see --help for the accepted values")
			return
		}
		f.Changed = true
	})
	return firstErr
}

func errorWithoutValue(err error, val string) string {
	msg := err.Error()
	if val != "" {
		msg = strings.ReplaceAll(msg, val, "…")
	}
	return msg
}
