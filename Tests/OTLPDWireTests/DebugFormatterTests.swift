import NIOCore
import OTLPDCore
import OTLPDWire
import Testing

struct DebugFormatterTests {
    func lines(_ signal: Signal, _ verbosity: DebugVerbosity) throws -> [String] {
        var sink = ByteSink()
        DebugFormatter.appendLines(try Fixture.buffer("\(signal).binpb"), signal: signal, verbosity: verbosity, time: "2026-11-21T10:00:00.123Z", to: &sink)
        return sink.string.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func spanLines() throws {
        let lines = try self.lines(.traces, .normal)
        #expect(lines.count == 3)
        #expect(
            lines[0]
                == #"2026-11-21T10:00:00.123Z span  checkout  GET /cart  trace=4bf92f3577b34da6a3ce929d0e0e4736  span=00f067aa0ba902b7  12.3ms  ERROR "payment failed""#
        )
        #expect(lines[1] == "2026-11-21T10:00:00.123Z span  checkout  SELECT  trace=000102030405060708090a0b0c0d0e0f  span=0001020304050607  0us  OK")
        #expect(lines[2].hasPrefix("2026-11-21T10:00:00.123Z span  cart  SELECT  "))
    }

    @Test func metricLines() throws {
        let lines = try self.lines(.metrics, .normal)
        #expect(lines.count == 9)
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  cpu  gauge  0.75  {route=/cart}"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  cpu  gauge  -42"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  requests  sum  9007199254740993  {route=/cart}"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  latency  histogram  count=6  sum=0  {route=/cart}"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  size  exponential_histogram  count=7  sum=1234.5  {route=/cart}"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z metric  checkout  rpc.duration  summary  count=3  sum=4.5  {route=/cart}"))
        // A resource without service.name.
        #expect(lines.last?.hasPrefix("2026-11-21T10:00:00.123Z metric  unknown  cpu  gauge") == true)
    }

    @Test func logLines() throws {
        let lines = try self.lines(.logs, .normal)
        #expect(
            lines == [
                #"2026-11-21T10:00:00.123Z log  checkout  ERROR  payment failed\nfor order 42  trace=4bf92f3577b34da6a3ce929d0e0e4736  span=00f067aa0ba902b7"#,
                "2026-11-21T10:00:00.123Z log  checkout  -  {k=v, n=true}",
                "2026-11-21T10:00:00.123Z log  checkout  -  [2.5, 0x6869]",
            ])
    }

    @Test func basicIsALinePerResource() throws {
        #expect(try self.lines(.traces, .basic) == ["2026-11-21T10:00:00.123Z span  checkout  2 spans", "2026-11-21T10:00:00.123Z span  cart  1 spans"])
        #expect(try self.lines(.logs, .basic) == ["2026-11-21T10:00:00.123Z log  checkout  3 log records"])
    }

    @Test("detailed prints every field, each line with the prefix")
    func detailed() throws {
        let lines = try self.lines(.traces, .detailed)
        #expect(lines.allSatisfy { $0.hasPrefix("2026-11-21T10:00:00.123Z span  checkout  ") || $0.hasPrefix("2026-11-21T10:00:00.123Z span  cart  ") })
        #expect(lines.contains("2026-11-21T10:00:00.123Z span  checkout      trace_id: 4bf92f3577b34da6a3ce929d0e0e4736"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z span  checkout      kind: 2 (SPAN_KIND_SERVER)"))
        #expect(lines.contains("2026-11-21T10:00:00.123Z span  checkout      attributes: http.status_code=200"))
        #expect(lines.contains { $0.contains("start_time_unix_nano: 1763719200123456789 (2025-11-21T10:00:00.123Z)") })
        #expect(lines.contains { $0.contains(#"attributes: escapes=quote \" backslash \\ newline \n tab \t bell \u0007 del "#) })
    }

    @Test func samplingSkipsRecords() throws {
        var sink = ByteSink()
        var count = 0
        DebugFormatter.appendLines(try Fixture.buffer("traces.binpb"), signal: .traces, verbosity: .normal, time: "t", to: &sink) { keep in
            count += 1
            keep = count == 2
        }
        #expect(sink.string.split(separator: "\n").count == 1)
        #expect(sink.string.contains("SELECT"))
    }
}
