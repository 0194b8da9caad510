"""Scalar lowering: an elementwise op's `lower(P, attrs, *xs)` (its registry entry) computes one element with
the primitives of P, which each code generator renders once (runtime/cpu.py: LLVM IR; runtime/cuda.py: CUDA C):

  c(v)  add sub mul div neg maximum minimum (NaN-propagating)  cmp(op, x, y) -> bool  where(bool, x, y)
  abs sqrt floor ceil rint copysign fmod  exp log sin cos

Everything else is written once below in those primitives, for both backends (accuracy: docs/NUMERICS.md).
P.f64 says the element type; a lowering returns None where it has no scalar form (the group runs NumPy).
"""
import math

# erfc(a) * exp(a * a) on a in [0.5, 6] as a Chebyshev series in s = (2t - 1.05) / 0.55, t = 2 / (2 + a)
# (fitted here against a long-double continued fraction; float32 uses the first 10 terms)
ERFCX = (0.3157815003709682, 0.25827762333138915, 0.03843266692042739, 0.0032001633666296414,
         1.9731811450455526e-05, -2.1106094977068156e-05, -4.4287600209597567e-07, 2.1010632958010885e-07,
         -3.6942856466385004e-10, -2.5393266459362965e-09, 1.4344788637312904e-10, 2.6195916792570844e-11,
         -4.2035770137963015e-12, -3.938700158765636e-14, 7.342351732290151e-14, -7.190447717483531e-15,
         -3.365408755303001e-16, 2.0501935668506393e-16, -4.5167817723517304e-17)


class Scalar:
    """The decompositions; a code generator subclasses this and defines the primitives."""
    f64 = False

    def isnan(self, x):
        return self.cmp('!=', x, x)

    def flag(self, cond):  # a comparison's value: 1 or 0 in the element type
        return self.where(cond, self.c(1), self.c(0))

    def poly(self, x, coeffs):  # Horner, coefficients from the highest degree down
        acc = self.c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.add(self.mul(acc, x), self.c(k))
        return acc

    def relu(self, x):
        return self.where(self.cmp('>', x, self.c(0)), x, self.where(self.isnan(x), x, self.c(0)))

    def sigmoid(self, x):
        e = self.exp(self.neg(self.abs(x)))  # exp of -|x|: never overflows
        d = self.add(self.c(1), e)
        return self.where(self.cmp('>=', x, self.c(0)), self.div(self.c(1), d), self.div(e, d))

    def tanh(self, x):
        ax, z = self.abs(x), self.mul(x, x)
        if self.f64:  # Cephes tanh: x + x*z*P(z)/Q(z) near 0
            pq = self.div(self.poly(z, [-9.64399179425052238628E-1, -9.92877231001918586564E1, -1.61468768441708447952E3]),
                          self.poly(z, [1.0, 1.12811678491632931402E2, 2.23548839060100448583E3, 4.84406305325125486048E3]))
            small = self.add(x, self.mul(self.mul(x, z), pq))
        else:  # Cephes tanhf: an odd polynomial near 0
            small = self.add(self.mul(self.mul(self.poly(z, [-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
                                                             1.33314422036E-1, -3.33332819422E-1]), z), x), x)
        big = self.sub(self.c(1), self.div(self.c(2), self.add(self.exp(self.add(ax, ax)), self.c(1))))
        return self.where(self.cmp('<', ax, self.c(0.625)), small, self.copysign(big, x))

    def log1p(self, x):  # log(u) * x / (u - 1) with u = 1 + x corrects u's rounding (Goldberg)
        u = self.add(self.c(1), x)
        r = self.where(self.cmp('==', u, self.c(1)), x, self.mul(self.log(u), self.div(x, self.sub(u, self.c(1)))))
        return self.where(self.cmp('==', u, self.c(math.inf)), u, r)

    def expm1(self, x):  # (u - 1) * x / log(u) with u = exp(x) (Kahan)
        u = self.exp(x)
        um = self.sub(u, self.c(1))
        r = self.where(self.cmp('==', um, self.c(-1)), um, self.mul(um, self.div(x, self.log(u))))
        r = self.where(self.cmp('==', u, self.c(1)), x, r)
        return self.where(self.cmp('==', u, self.c(math.inf)), u, r)

    def erf(self, x):
        a, z = self.abs(x), self.mul(x, x)
        n = 17 if self.f64 else 9  # |x| < 0.75: Taylor, x * sum (-1)^k x^2k / (k! (2k + 1)) * 2/sqrt(pi)
        small = self.mul(x, self.poly(z, [(-1) ** k * 2 / math.sqrt(math.pi) / math.factorial(k) / (2 * k + 1)
                                          for k in range(n - 1, -1, -1)]))
        ac = self.minimum(self.maximum(a, self.c(0.5)), self.c(6.0))
        s = self.sub(self.div(self.c(4 / 0.55), self.add(self.c(2), ac)), self.c(1.05 / 0.55))
        s2, b1, b2 = self.add(s, s), self.c(0), self.c(0)
        for ck in reversed(ERFCX[1:19 if self.f64 else 10]):  # Clenshaw
            b1, b2 = self.add(self.sub(self.mul(s2, b1), b2), self.c(ck)), b1
        r = self.add(self.sub(self.mul(s, b1), b2), self.c(ERFCX[0]))
        big = self.sub(self.c(1), self.mul(self.exp(self.neg(self.mul(ac, ac))), r))
        return self.where(self.cmp('<', a, self.c(0.75)), small, self.where(self.isnan(x), x, self.copysign(big, x)))

    def softrelu(self, x):
        return self.add(self.maximum(x, self.c(0)), self.log1p(self.exp(self.neg(self.abs(x)))))

    def softsign(self, x):
        return self.div(x, self.add(self.c(1), self.abs(x)))

    def sign(self, x):
        return self.where(self.cmp('>', x, self.c(0)), self.c(1), self.where(self.cmp('<', x, self.c(0)), self.c(-1), x))

    def power(self, x, y):  # exp(y log|x|); a negative base takes an integer exponent (odd: negative), else NaN
        r = self.exp(self.mul(y, self.log(self.abs(x))))
        odd = self.cmp('==', self.abs(self.fmod(y, self.c(2))), self.c(1))
        signed = self.where(self.cmp('==', self.floor(y), y), self.where(odd, self.neg(r), r),
                            self.where(self.cmp('<', x, self.c(0)), self.c(math.nan), r))
        r = self.where(self.cmp('<', self.copysign(self.c(1), x), self.c(0)), signed, r)
        return self.where(self.cmp('==', y, self.c(0)), self.c(1), self.where(self.cmp('==', x, self.c(1)), self.c(1), r))

    def mod(self, x, y):  # np.mod: the divisor's sign, and a zero result signed as the divisor
        r = self.fmod(x, y)
        flip = self.cmp('<', self.mul(self.copysign(self.c(1), r), self.copysign(self.c(1), y)), self.c(0))
        return self.where(self.cmp('!=', r, self.c(0)), self.where(flip, self.add(r, y), r), self.copysign(self.c(0), y))

    def clip(self, x, lo, hi):
        return self.minimum(self.maximum(x, self.c(lo)), self.c(hi))


def emit(P, node, args):
    """The scalar value of `node` from its inputs' values in P, or None (no lowering)."""
    low = node.op.lower
    return None if low is None else low(P, node.attrs, *args)
