// The lines the phase benchmarks (fsbench, netbench) print for `make bench`, which
// reads them (Sources/Tools/Bench): one per phase, in the kernel benchmarks' form,
// with values per unit of work.

public enum BenchReport {
    /// `instructions` spread over `units` (KiB, files, connections), rounded.
    public static func perUnit(_ instructions: UInt64, units: Int) -> UInt64 {
        (instructions + UInt64(units) / 2) / UInt64(units)
    }

    /// `bench NAME median=N p10=N p90=N min=N max=N iterations=N unit=U` over `values`,
    /// one per run (with five runs p10 is the least and p90 the greatest).
    public static func line(_ name: StaticString, _ values: [UInt64], unit: StaticString) -> String {
        let sorted = values.sorted()
        let count = sorted.count
        return "bench \(String(name)) median=\(sorted[count / 2]) p10=\(sorted[count / 10]) "
            + "p90=\(sorted[count * 9 / 10]) min=\(sorted[0]) max=\(sorted[count - 1]) iterations=\(count) "
            + "unit=\(String(unit))"
    }
}
