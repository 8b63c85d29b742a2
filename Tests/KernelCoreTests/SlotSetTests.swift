// Tests of SlotSet, the 320-slot bit set behind the ready queues and each task's
// queue of waiting senders, with members on both sides of every word boundary.
import Testing
@testable import KernelCore

@Suite struct SlotSetTests {
    static let boundaries = [0, 1, 62, 63, 64, 65, 127, 128, 191, 192, 255, 256, 318, 319]

    @Test func emptySetHasNoMembers() {
        let set = SlotSet()
        #expect(SlotSet.capacity == 320)
        #expect(set.isEmpty)
        #expect(set.first == nil)
        #expect(set.onlyMember == nil)
        #expect(set.count == 0)
        #expect(set.next(after: -1) == nil)
        #expect(set.next(after: 319) == nil)
        for slot in Self.boundaries { #expect(!set.contains(slot)) }
        #expect(!set.contains(-1))
        #expect(!set.contains(320))
    }

    @Test func insertRemoveContainsAcrossWords() {
        var set = SlotSet()
        for slot in [63, 64, 127, 319] { set.insert(slot) }
        #expect(set.count == 4)
        #expect(!set.isEmpty)
        for slot in 0..<SlotSet.capacity {
            #expect(set.contains(slot) == [63, 64, 127, 319].contains(slot), "slot \(slot)")
        }
        set.insert(64)
        #expect(set.count == 4, "inserting twice is inserting once")
        set.remove(64)
        set.remove(64)
        #expect(!set.contains(64))
        #expect(set.contains(63))
        #expect(set.count == 3)
        set.remove(63)
        set.remove(127)
        #expect(set.first == 319)
        set.remove(319)
        #expect(set.isEmpty)
        #expect(set == SlotSet())
    }

    @Test func firstIsTheLowestMember() {
        var set = SlotSet()
        for slot in Self.boundaries.reversed() {
            set.insert(slot)
            #expect(set.first == slot)
        }
        var single = SlotSet()
        single.insert(319)
        #expect(single.first == 319)
    }

    @Test func onlyMemberAndContainsOnly() {
        // `containsOnly` reads in place (mutating), so it is asked outside #expect.
        for slot in Self.boundaries {
            var set = SlotSet([slot])
            #expect(set.onlyMember == slot)
            var answers = [set.containsOnly(slot), set.containsOnly(slot == 0 ? 1 : slot - 1)]
            #expect(answers == [true, false])
            // A second member in the same word, then in another word.
            set.insert(slot ^ 1)
            #expect(set.onlyMember == nil)
            answers = [set.containsOnly(slot)]
            set.remove(slot ^ 1)
            set.insert((slot + 64) % 320)
            #expect(set.onlyMember == nil)
            answers.append(set.containsOnly(slot))
            #expect(answers == [false, false])
        }
        // The same bit position in two words is two members.
        var twins = SlotSet([5, 69])
        #expect(twins.onlyMember == nil)
        let answers = [twins.containsOnly(5), twins.containsOnly(69)]
        #expect(answers == [false, false])
    }

    @Test func removeFirstIteratesInOrder() {
        var set = SlotSet(Self.boundaries.reversed())
        var seen: [Int] = []
        while let slot = set.removeFirst() { seen.append(slot) }
        #expect(seen == Self.boundaries)
        #expect(set.isEmpty)
        #expect(set.first == nil)
    }

    @Test func nextWrapsRoundRobin() {
        let members = [3, 63, 64, 127, 200, 319]
        let set = SlotSet(members)
        for previous in -1..<SlotSet.capacity {
            let expected = members.first { $0 > previous } ?? members[0]
            #expect(set.next(after: previous) == expected, "after \(previous)")
        }
        // Only members below `previous` in the same word: found after the wrap.
        let low = SlotSet([1, 2])
        #expect(low.next(after: 2) == 1)
        #expect(low.next(after: 40) == 1)
        #expect(low.next(after: 319) == 1)
        let single = SlotSet([64])
        for previous in [-1, 0, 63, 64, 65, 319] { #expect(single.next(after: previous) == 64) }
    }

    @Test func unionAndEquality() {
        var a = SlotSet([0, 64])
        let b = SlotSet([64, 127, 319])
        a.formUnion(b)
        #expect(a == SlotSet([0, 64, 127, 319]))
        #expect(a != b)
        #expect(SlotSet([63]) != SlotSet([127]), "same bit, different word")
        var emptied = SlotSet([200])
        emptied.remove(200)
        #expect(emptied == SlotSet())
    }
}
