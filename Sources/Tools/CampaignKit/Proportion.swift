// A share of trials, with the Wilson score interval around it.
//
// Campaign cells are small (tens to hundreds of manifested faults) and their
// proportions sit near 0 or 1, where the textbook "p ± 1.96·√(p(1-p)/n)" interval
// fails worst: at 50 of 50 it claims [100 %, 100 %]. Wilson's interval inverts the
// score test instead; it stays inside [0, 1], is never empty, and keeps close to its
// nominal coverage at these sizes (Brown, Cai and DasGupta, "Interval Estimation for
// a Binomial Proportion", 2001, recommend it for n < 40 and as a default beyond).
// 50 of 50 gives [92.9 %, 100 %]: what 50 successes can and cannot promise.

import Foundation

public struct Proportion: Sendable, Equatable {
    public var successes: Int
    public var trials: Int

    public init(_ successes: Int, of trials: Int) {
        self.successes = successes
        self.trials = trials
    }

    /// The observed share; nil without trials.
    public var estimate: Double? { trials > 0 ? Double(successes) / Double(trials) : nil }

    /// The Wilson score interval; `z` = 1.959964 is 95 % two-sided. Nil without trials.
    public func wilson(z: Double = 1.959_963_984_540_054) -> (low: Double, high: Double)? {
        guard trials > 0 else { return nil }
        let n = Double(trials)
        let p = Double(successes) / n
        let z2 = z * z
        let centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot() / (1 + z2 / n)
        return (max(0, centre - half), min(1, centre + half))
    }

    /// "97.1 % [90.2, 99.2] (68/70)", or "—" without trials.
    public var summary: String {
        guard let estimate, let interval = wilson() else { return "—" }
        return "\(Self.percent(estimate)) % [\(Self.percent(interval.low)), \(Self.percent(interval.high))]"
            + " (\(successes)/\(trials))"
    }

    static func percent(_ share: Double) -> String { String(format: "%.1f", share * 100) }
}
