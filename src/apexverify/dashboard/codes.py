"""Labelled choices for the targeting codes of the workflow guide.

Audience (1-23) and objective (1-16) labels are the guide's tables. The guide publishes only
the range of industry codes (1-115) and a few inferred labels, so the other codes are offered
by number rather than with invented names.
"""

from __future__ import annotations

AUDIENCES: dict[int, str] = {
    1: "Agency / Consultants",
    2: "Creators & Influencers",
    3: "Customer Support & Success",
    4: "Developers & Technical Leads",
    5: "E-commerce & Retail Managers",
    6: "Enterprise Decision-Makers",
    7: "Finance & Operations Professionals",
    8: "Founders & C-Level Executives",
    9: "Freelancers & Solopreneurs",
    10: "Government & Public Sector Employees",
    11: "HR & Talent Acquisition",
    12: "Healthcare Professionals",
    13: "Hobbyists & Enthusiasts",
    14: "Investors & VCs",
    15: "Job Seekers",
    16: "Legal Professionals",
    17: "Marketing & Sales Professionals",
    18: "Non-Profit Leaders & Staff",
    19: "Parents & Families",
    20: "Product & Project Managers",
    21: "Real Estate Professionals",
    22: "Small-to-Medium Business (SMB) Owners",
    23: "Students & Educators",
}

OBJECTIVES: dict[int, str] = {
    1: "App Installs / Downloads",
    2: "Audience Building (Email/Community)",
    3: "Brand Awareness & Recall",
    4: "Customer Acquisition / Sales",
    5: "Free Trial or Freemium Signups",
    6: "Lead Generation (Top/Mid-Funnel)",
    7: "Loyalty & Referral Program Growth",
    8: "Market & Customer Research",
    9: "New Market Entry",
    10: "Partner & Affiliate Recruitment",
    11: "Product Engagement & Feature Adoption",
    12: "Sales-Ready Leads (Bottom-Funnel)",
    13: "Upsell / Cross-sell Revenue",
    14: "User Retention & Churn Reduction",
    15: "Waitlist / Pre-order Signups",
    16: "Website / App Traffic Acquisition",
}

_KNOWN_INDUSTRIES = {
    1: "Accommodation",
    2: "Accommodation and Food Services",
    3: "Administrative and Support Services",
    46: "Information",
    101: "Telecommunications",
    115: "Wood Product Manufacturing",
}

INDUSTRIES: dict[int, str] = {
    code: _KNOWN_INDUSTRIES.get(code, f"Industry code {code}") for code in range(1, 116)
}


def label(codes: dict[int, str], value: object) -> str:
    """``"17 · Marketing & Sales Professionals"`` for a stored code, ``"—"`` when unset."""
    if not isinstance(value, int) or value not in codes:
        return "—"
    return f"{value} · {codes[value]}"
