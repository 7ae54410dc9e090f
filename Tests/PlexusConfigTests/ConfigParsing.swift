import PlexusConfig
import PlexusHost

/// What every plexus.yaml suite does: parse a text as the file
/// "plexus.yaml" over the defaults, or get the error it is refused with.
protocol ConfigParsing {}

extension ConfigParsing {
    func parse(_ yaml: String) throws(ConfigError) -> HostConfiguration {
        try ConfigFile.parse(yaml, file: "plexus.yaml", into: HostConfiguration(pluginsDirectory: nil))
    }

    /// The refusal's text, or "no error".
    func error(_ yaml: String) -> String {
        do { _ = try parse(yaml); return "no error" } catch { return error.description }
    }
}
