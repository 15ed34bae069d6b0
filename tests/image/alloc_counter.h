// Number of global operator new calls so far in this test binary.
#pragma once

namespace damoyolo::testing {
long allocation_count();
}
