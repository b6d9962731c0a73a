import OTLPDHTTP
import Testing

struct GRPCTimeoutTests {
    @Test("every unit parses; malformed values do not")
    func parse() {
        #expect(GRPCTimeout.parse("10S") == .seconds(10))
        #expect(GRPCTimeout.parse("2H") == .seconds(7200))
        #expect(GRPCTimeout.parse("3M") == .seconds(180))
        #expect(GRPCTimeout.parse("250m") == .milliseconds(250))
        #expect(GRPCTimeout.parse("7u") == .microseconds(7))
        #expect(GRPCTimeout.parse("9n") == .nanoseconds(9))
        #expect(GRPCTimeout.parse("S") == nil)
        #expect(GRPCTimeout.parse("123456789S") == nil, "at most 8 digits")
        #expect(GRPCTimeout.parse("1.5S") == nil)
        #expect(GRPCTimeout.parse("10s") == nil)
    }

    @Test("formatting rounds milliseconds up and falls back to seconds past 8 digits")
    func format() {
        #expect(GRPCTimeout.format(.milliseconds(1500)) == "1500m")
        #expect(GRPCTimeout.format(.microseconds(1500)) == "2m")
        #expect(GRPCTimeout.format(.seconds(200_000)) == "200001S")
        #expect(GRPCTimeout.format(.seconds(-1)) == "0m")
        #expect(GRPCTimeout.parse(GRPCTimeout.format(.seconds(5))) == .seconds(5))
    }
}

struct GRPCMessageTests {
    @Test("grpc-message percent-encoding round-trips")
    func percent() {
        let text = "100% wrong: naïve\n"
        #expect(GRPCFraming.percentDecode(GRPCFraming.percentEncode(text)) == text)
        #expect(GRPCFraming.percentDecode("a%zzb") == "a%zzb")
    }
}
