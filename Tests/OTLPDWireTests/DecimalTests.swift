import OTLPDWire
import Testing

struct DecimalTests {
    func decimal(_ value: UInt64) -> String {
        var sink = ByteSink()
        sink.appendDecimal(value)
        return sink.string
    }

    @Test("decimals match the standard library's, at every digit count and around the eight-digit split")
    func decimals() {
        var values: [UInt64] = [0, 9, 10, 99, 100, 9_999, 10_000, 99_999_999, 100_000_000, 100_000_001, 1_000_000_000,
                                9_999_999_999_999_999, 10_000_000_000_000_000, 1_763_700_000_012_300_000, UInt64.max, UInt64.max - 1]
        var power: UInt64 = 1
        for _ in 0..<19 {
            values += [power - 1, power, power + 1, power * 9 + (power - 1)]
            power *= 10
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let digits = Int.random(in: 1...20, using: &generator)
            values.append(UInt64.random(in: 0...UInt64.max, using: &generator) >> (64 - min(64, digits * 10 / 3 + 1)))
        }
        for value in values {
            #expect(self.decimal(value) == String(value), "\(value)")
        }
        var sink = ByteSink()
        sink.appendDecimal(Int64.min)
        #expect(sink.string == String(Int64.min))
    }
}
