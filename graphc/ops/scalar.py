"""Scalar lowering: an elementwise op's `lower(P, attrs, *xs)` (its registry entry) computes one element with
the primitives of P, which each code generator renders once (runtime/cpu.py: LLVM IR; runtime/cuda.py: CUDA C):

  c(v)  add sub mul div neg maximum minimum (NaN-propagating)  cmp(op, x, y) -> bool  where(bool, x, y)
  abs sqrt floor ceil rint copysign fmod  exp log  libm(name, x, cond, other): cond ? C's sin/cos(x) : other,
  the call made only where cond holds (the huge arguments of sin and cos)

Everything else is written once below in those primitives, for both backends (accuracy: docs/NUMERICS.md).
P.f64 says the element type; a lowering returns None where it has no scalar form (the group runs NumPy).
"""
import math
from decimal import Decimal
from fractions import Fraction

# erfc(a) * exp(a * a) on a in [0.5, 6] as a Chebyshev series in s = (2t - 1.05) / 0.55, t = 2 / (2 + a)
# (fitted here against a long-double continued fraction; float32 uses the first 10 terms)
ERFCX = (0.3157815003709682, 0.25827762333138915, 0.03843266692042739, 0.0032001633666296414,
         1.9731811450455526e-05, -2.1106094977068156e-05, -4.4287600209597567e-07, 2.1010632958010885e-07,
         -3.6942856466385004e-10, -2.5393266459362965e-09, 1.4344788637312904e-10, 2.6195916792570844e-11,
         -4.2035770137963015e-12, -3.938700158765636e-14, 7.342351732290151e-14, -7.190447717483531e-15,
         -3.365408755303001e-16, 2.0501935668506393e-16, -4.5167817723517304e-17)


# pi/2 to 290 bits, split for Cody-Waite range reduction: n parts of `bits` significant bits (k * part is exact
# for |k| < 2**(mantissa - bits)) and a tail rounded to the element type
PIO2 = Fraction(Decimal('1.57079632679489661923132169163975144209858469968755291048747229615390820314310449931401741'))


def _split(bits, n):
    parts, rest = [], PIO2
    for i in range(n + 1):
        e = rest.numerator.bit_length() - rest.denominator.bit_length()
        e -= rest < Fraction(2) ** e  # 2**e <= rest < 2**(e + 1)
        scale = Fraction(2) ** (bits - 1 - e)
        parts.append(float(Fraction(round(rest * scale)) / scale) if i < n else float(rest))
        rest -= Fraction(parts[-1])
    return parts


# float64: 3 x 32 bits and a tail, exact for |k| < 2**21 (|x| < 2**21); float32: 4 x 8 bits, |k| < 2**16
PIO2_64, PIO2_32, BIG_64, BIG_32 = _split(32, 3), _split(8, 4), 2.0 ** 21, 2.0 ** 16
# minimax polynomials on [-pi/4, pi/4] in z = r * r: fdlibm's __kernel_sin/__kernel_cos (float64), Cephes' sinf/cosf
SIN_64 = (1.58969099521155010221e-10, -2.50507602534068634195e-08, 2.75573137070700676789e-06,
          -1.98412698298579493134e-04, 8.33333333332248946124e-03, -1.66666666666666324348e-01)
COS_64 = (-1.13596475577881948265e-11, 2.08757232129817482790e-09, -2.75573143513906633035e-07,
          2.48015872894767294178e-05, -1.38888888888741095749e-03, 4.16666666666666019037e-02)
SIN_32, COS_32 = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1), (2.443315711809948e-5, -1.388731625493765e-3,
                                                                          4.166664568298827e-2)
# atan: Cephes' atan (float64: P/Q on [0, 0.66], plus pi/4's low bits) and atanf (float32: on [0, tan(pi/8)])
ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
          -1.228866684490136173410e2, -6.485021904942025371773e1)
ATAN_Q = (1.0, 2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
          4.853903996359136964868e2, 1.945506571482613964425e2)
ATAN_32 = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
PIO2_LO = 6.123233995736765886130e-17


class Scalar:
    """The decompositions; a code generator subclasses this and defines the primitives."""
    f64 = False

    def isnan(self, x):
        return self.cmp('!=', x, x)

    def flag(self, cond):  # a comparison's value: 1 or 0 in the element type
        return self.where(cond, self.c(1), self.c(0))

    def fma(self, x, y, z):  # x * y + z; a backend with a fused multiply-add renders it rounded once
        return self.add(self.mul(x, y), z)

    def exp_bounded(self, x, lo, hi):  # exp of x clamped to [lo, hi], a range whose results are normal numbers
        return self.exp(self.clip(x, lo, hi))

    def poly(self, x, coeffs):  # Horner, coefficients from the highest degree down
        acc = self.c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.fma(acc, x, self.c(k))
        return acc

    def sin(self, x):
        return self._sincos(x, 0)

    def cos(self, x):  # sin(x + pi/2): one quadrant on
        return self._sincos(x, 1)

    def _sincos(self, x, shift):
        """x = k pi/2 + r, |r| <= pi/4 (Cody-Waite, exact below BIG); the quadrant k + shift picks +-sin r or +-cos r.
        At or above BIG (and inf, NaN) the C library's sin/cos, called for those elements only."""
        parts, big = (PIO2_64, BIG_64) if self.f64 else (PIO2_32, BIG_32)
        k = self.rint(self.mul(x, self.c(2 / math.pi)))
        r = x
        for p in parts:
            r = self.sub(r, self.mul(k, self.c(p)))
        r = self.where(self.cmp('==', k, self.c(0)), x, r)
        z = self.mul(r, r)
        if self.f64:
            sin = self.add(r, self.mul(self.mul(r, z), self.poly(z, SIN_64)))
            hz = self.mul(z, self.c(0.5))
            w = self.sub(self.c(1), hz)  # 1 - z/2, its rounding error put back (fdlibm)
            cos = self.add(w, self.add(self.sub(self.sub(self.c(1), w), hz), self.mul(self.mul(z, z), self.poly(z, COS_64))))
        else:
            sin = self.add(self.mul(self.mul(self.poly(z, SIN_32), z), r), r)
            cos = self.add(self.sub(self.mul(self.mul(self.poly(z, COS_32), z), z), self.mul(z, self.c(0.5))), self.c(1))
        n = self.add(k, self.c(shift))
        q = self.sub(n, self.mul(self.c(4), self.floor(self.mul(n, self.c(0.25)))))  # n mod 4
        y = self.where(self.cmp('==', self.abs(self.sub(q, self.c(2))), self.c(1)), cos, sin)
        y = self.where(self.cmp('>=', q, self.c(2)), self.neg(y), y)
        y = y if shift else self.where(self.cmp('==', x, self.c(0)), x, y)  # sin(-0) = -0
        return self.libm('cos' if shift else 'sin', x, self.cmp('>=', self.abs(x), self.c(big)), y)

    def atan(self, x):  # atan |x| = y0 + atan t: t = -1/|x| (y0 = pi/2), (|x| - 1)/(|x| + 1) (pi/4) or |x| (0)
        a = self.abs(x)
        big, mid = self.cmp('>', a, self.c(2.414213562373095)), self.cmp('>', a, self.c(0.66 if self.f64 else 0.41421356))
        t = self.where(big, self.div(self.c(-1), a), self.where(mid, self.div(self.sub(a, self.c(1)), self.add(a, self.c(1))), a))
        y0 = self.where(big, self.c(math.pi / 2), self.where(mid, self.c(math.pi / 4), self.c(0)))
        z = self.mul(t, t)
        if self.f64:
            p = self.div(self.mul(z, self.poly(z, ATAN_P)), self.poly(z, ATAN_Q))
            lo = self.where(big, self.c(PIO2_LO), self.where(mid, self.c(PIO2_LO / 2), self.c(0)))
            r = self.add(y0, self.add(self.add(self.mul(t, p), t), lo))
        else:
            r = self.add(y0, self.add(self.mul(self.mul(self.poly(z, ATAN_32), z), t), t))
        return self.copysign(r, x)

    def asin(self, x):  # atan(x / sqrt(1 - x^2)), 1 - x^2 as (1 - x)(1 + x): exact factors near +-1
        return self.atan(self.div(x, self.sqrt(self.mul(self.sub(self.c(1), x), self.add(self.c(1), x)))))

    def acos(self, x):  # 2 atan sqrt((1 - x) / (1 + x)): no cancellation near 1, where acos is small
        return self.mul(self.c(2), self.atan(self.sqrt(self.div(self.sub(self.c(1), x), self.add(self.c(1), x)))))

    def atanh(self, x):  # log1p(2|x| / (1 - |x|)) / 2
        a = self.abs(x)
        return self.copysign(self.mul(self.c(0.5), self.log1p(self.div(self.add(a, a), self.sub(self.c(1), a)))), x)

    def _huge(self, a, small):  # above 2**28 (float32: 2**12) asinh and acosh are log(2a) to the last bit
        big = self.c(2.0 ** 28 if self.f64 else 2.0 ** 12)
        return self.where(self.cmp('>', a, big), self.add(self.log(a), self.c(math.log(2))), small)

    def asinh(self, x):  # log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x|
        a = self.abs(x)
        a2 = self.mul(a, a)
        small = self.log1p(self.add(a, self.div(a2, self.add(self.c(1), self.sqrt(self.add(self.c(1), a2))))))
        return self.copysign(self._huge(a, small), x)

    def acosh(self, x):  # log1p(t + sqrt(t (t + 2))), t = x - 1 (exact near 1); NaN below 1
        t = self.sub(x, self.c(1))
        r = self._huge(x, self.log1p(self.add(t, self.sqrt(self.mul(t, self.add(t, self.c(2)))))))
        return self.where(self.cmp('<', x, self.c(1)), self.c(math.nan), r)

    def relu(self, x):  # max(0, x) keeping NaN (x86's maxps(0, x): one instruction), then + 0: relu(-0) = +0
        return self.add(self.where(self.cmp('<', x, self.c(0)), self.c(0), x), self.c(0))

    def sigmoid(self, x):
        e = self.exp(self.neg(self.abs(x)))  # exp of -|x|: never overflows
        d = self.add(self.c(1), e)
        return self.where(self.cmp('>=', x, self.c(0)), self.div(self.c(1), d), self.div(e, d))

    def tanh(self, x):  # odd: computed on |x|, the sign copied back (tanh(-0) = -0)
        ax, z = self.abs(x), self.mul(x, x)
        if self.f64:  # Cephes tanh: x + x*z*P(z)/Q(z) near 0
            pq = self.div(self.poly(z, [-9.64399179425052238628E-1, -9.92877231001918586564E1, -1.61468768441708447952E3]),
                          self.poly(z, [1.0, 1.12811678491632931402E2, 2.23548839060100448583E3, 4.84406305325125486048E3]))
            small = self.fma(self.mul(ax, z), pq, ax)
        else:  # Cephes tanhf: an odd polynomial near 0
            small = self.fma(self.mul(self.poly(z, [-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
                                                    1.33314422036E-1, -3.33332819422E-1]), z), ax, ax)
        # 1 - 2e / (1 + e), e = exp(-2|x|) (no overflow): above 20 (float64: 40) tanh rounds to 1, e need not go lower
        e = self.exp_bounded(self.mul(ax, self.c(-2)), -40 if self.f64 else -20, 0)
        big = self.sub(self.c(1), self.div(self.add(e, e), self.add(self.c(1), e)))
        r = self.copysign(self.where(self.cmp('<', ax, self.c(0.625)), small, big), x)
        return self.where(self.isnan(x), x, r)

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

    def sign(self, x):  # np.sign: +0 for -0, NaN for NaN
        zero = self.where(self.cmp('==', x, self.c(0)), self.c(0), x)
        return self.where(self.cmp('>', x, self.c(0)), self.c(1), self.where(self.cmp('<', x, self.c(0)), self.c(-1), zero))

    def log_rounded(self, x):  # log to within half an ulp where a backend's log is coarser (power's exponent)
        return self.log(x)

    def power(self, x, y):  # exp(y log|x|); a negative base takes an integer exponent (odd: negative), else NaN
        r = self.exp(self.mul(y, self.log_rounded(self.abs(x))))
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
