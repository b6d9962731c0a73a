/// What otlpd runs with no `--config`: OTLP/gRPC on localhost:4317 and
/// OTLP/HTTP on localhost:4318, every signal through `batch` into the
/// `debug` exporter (a line per record on stdout) and the `file` exporter
/// (one file per signal under ./otlpd-data/).
public enum DefaultConfig {
    public static let yaml = """
        receivers:
          otlp:
            protocols:
              grpc:
                endpoint: localhost:4317
              http:
                endpoint: localhost:4318

        processors:
          batch: {}

        exporters:
          debug:
            verbosity: normal
          file:
            path: ./otlpd-data/otlpd.jsonl

        service:
          pipelines:
            traces:
              receivers: [otlp]
              processors: [batch]
              exporters: [debug, file]
            metrics:
              receivers: [otlp]
              processors: [batch]
              exporters: [debug, file]
            logs:
              receivers: [otlp]
              processors: [batch]
              exporters: [debug, file]

        """
}
