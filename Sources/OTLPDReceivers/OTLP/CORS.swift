import OTLPDCore
import OTLPDHTTP
import OTLPDTransport

/// `cors` of the HTTP protocol: which browser origins may send OTLP/HTTP.
public struct CORSConfiguration: Sendable {
    /// Exact origins or patterns with `*` (`http://localhost:*`).
    public var allowedOrigins: [String]
    public var allowedHeaders: [String]
    public var maxAge: Int?

    public init(allowedOrigins: [String], allowedHeaders: [String] = [], maxAge: Int? = nil) {
        self.allowedOrigins = allowedOrigins
        self.allowedHeaders = allowedHeaders
        self.maxAge = maxAge
    }

    static func decode(_ reader: ConfigReader) -> CORSConfiguration {
        defer { reader.finish() }
        let maxAge = reader.contains("max_age") ? reader.int("max_age", default: 0, in: 0...86_400 * 7) : nil
        return CORSConfiguration(
            allowedOrigins: reader.stringList("allowed_origins") ?? [],
            allowedHeaders: reader.stringList("allowed_headers") ?? [],
            maxAge: maxAge)
    }

    /// Whether `origin` matches one of the allowed patterns.
    public func allows(origin: String) -> Bool {
        self.allowedOrigins.contains { Self.matches(origin, pattern: $0) }
    }

    static func matches(_ text: String, pattern: String) -> Bool {
        if pattern == "*" { return true }
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        if parts.count == 1 { return text == pattern }
        var rest = Substring(text)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.enumerated().dropFirst() {
            if index == parts.count - 1 { return part.isEmpty || rest.hasSuffix(part) }
            guard let end = Self.endOfFirstMatch(of: part, in: rest) else { return false }
            rest = rest[end...]
        }
        return true
    }

    private static func endOfFirstMatch(of part: Substring, in text: Substring) -> Substring.Index? {
        var start = text.startIndex
        while start <= text.endIndex {
            if text[start...].hasPrefix(part) { return text.index(start, offsetBy: part.count) }
            guard start < text.endIndex else { return nil }
            start = text.index(after: start)
        }
        return nil
    }

    /// Headers that let a browser read the answer to an allowed origin.
    func responseHeaders(origin: String) -> [HTTPHeaderField] {
        [HTTPHeaderField("access-control-allow-origin", origin), HTTPHeaderField("vary", "Origin")]
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`).
    func preflight(origin: String, requestedHeaders: String?) -> ServerResponse {
        guard self.allows(origin: origin) else {
            // As the Collector: no CORS headers, so the browser refuses.
            return ServerResponse(status: 204, headers: [HTTPHeaderField("vary", "Origin")])
        }
        var headers = self.responseHeaders(origin: origin)
        headers.append(HTTPHeaderField("access-control-allow-methods", "POST"))
        // Content-Type and the OTLP headers are always allowed; more if configured.
        var allowed = ["content-type", "content-encoding", "x-requested-with"] + self.allowedHeaders.map { $0.lowercased() }
        if let requestedHeaders {
            let requested = requestedHeaders.split(separator: ",").map { $0.trimmingCharacters(in: " ").lowercased() }
            if self.allowedHeaders.contains("*") { allowed = requested }
            allowed = requested.filter { allowed.contains($0) }
        }
        if !allowed.isEmpty { headers.append(HTTPHeaderField("access-control-allow-headers", allowed.joined(separator: ", "))) }
        if let maxAge = self.maxAge { headers.append(HTTPHeaderField("access-control-max-age", String(maxAge))) }
        return ServerResponse(status: 204, headers: headers)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var slice = self
        while slice.first == set { slice = slice.dropFirst() }
        while slice.last == set { slice = slice.dropLast() }
        return String(slice)
    }
}
